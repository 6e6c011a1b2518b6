"""winmail.dat without silent losses: RTF-only bodies, whole files, embedded messages and OLE
objects of direct mail, Exchange (X.500) senders, the sent time, the internet Message-ID.

Fixtures: ``fixtures/tnef/`` (``make_tnef_fixtures.py``, assembled from MS-OXTNEF)."""

from __future__ import annotations

import hashlib

from make_tnef_fixtures import ZERO_TAILED
from unwrap_helpers import direct, forwarded

from mailroom.records.email import Email


def only(result: object) -> Email:
    assert isinstance(result, list) and len(result) == 1, result
    return result[0]


def test_rtf_only_body_gives_its_encapsulated_html() -> None:
    (email,) = direct("tnef/rtf_only.eml")
    assert email.html_body == "<html><body>Please quote <b>fifty units</b>.</body></html>"


def test_file_with_trailing_zeros_is_whole() -> None:
    (email,) = direct("tnef/files.eml")
    sheet = next(a for a in email.attachments if a.name == "sheet.xls")
    assert sheet.size == len(ZERO_TAILED) == 61_952
    assert sheet.sha256 == hashlib.sha256(ZERO_TAILED).hexdigest()
    assert sheet.content_type == "application/vnd.ms-excel"


def test_embedded_message_and_ole_object_are_kept_in_direct_mail() -> None:
    (email,) = direct("tnef/files.eml")
    by_name = {a.name: a for a in email.attachments}
    embedded = by_name["Earlier offer.eml"]
    assert embedded.content_type == "message/rfc822"
    assert embedded.content is not None
    assert b"Message-ID: <offer-3@partner.example>" in embedded.content
    assert b"erin@partner.example" in embedded.content
    drawing = by_name["drawing.bin"]
    assert drawing.content is not None and drawing.content.startswith(b"\xd0\xcf\x11\xe0")


def test_exchange_sender_date_and_internet_message_id() -> None:
    email = only(forwarded("tnef/x500_forward.eml"))
    assert email.from_address is not None
    assert (email.from_address.name, email.from_address.address) == ("Erin Example",
                                                                     "erin@partner.example")
    assert email.date is not None and email.date.isoformat() == "2025-03-06T08:30:00+00:00"
    assert email.dedupe_key == "contract-9@partner.example"


def test_without_an_internet_message_id_the_key_is_never_the_mapi_hex_id() -> None:
    email = only(forwarded("tnef/x500_forward_no_id.eml"))
    assert email.message_id is None
    assert email.dedupe_key.startswith("sha256:")
