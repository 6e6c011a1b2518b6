"""Outlook .msg originals: real MS-CFB/MS-OXMSG files (built with msgforge by
``make_msg_fixtures.py``), forwarded as attachments, with the exact fields each must give."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from unwrap_helpers import FORWARD_MAILBOX, direct, fixture, forwarded

from mailroom.records.email import Address, Email
from unwrap.context import Rejection
from unwrap.msgfile import read_msg

PDF = base64.b64decode("JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCg==")
QUOTE = "Quote-1@customer.example"


def only(result: list[Email] | Rejection) -> Email:
    assert isinstance(result, list), result
    assert len(result) == 1, result
    return result[0]


def assert_attributed_to_alice(email: Email, path: str) -> None:
    d = email.delivery
    assert (d.copy_kind, d.path) == ("msg", (path,))
    assert (d.forwarded_by_user, d.forwarder_address, d.forward_mailbox_id) == (
        "u-alice", "alice@corp.example", FORWARD_MAILBOX)
    assert (d.mailbox_id, d.owner_kind, d.raw_identity) == (
        FORWARD_MAILBOX, "forward", f"{FORWARD_MAILBOX}/INBOX/7/1")


@pytest.mark.parametrize("name, path", [
    ("fwd_msg_outlook.eml", "part 2: application/vnd.ms-outlook 'Quote request.msg'"),
    ("fwd_msg_octet.eml", "part 2: application/octet-stream 'Quote request.msg'"),
    # HTML kept only inside the compressed RTF (no PidTagHtml), as Outlook often stores it
    ("fwd_msg_rtf_html.eml", "part 2: application/vnd.ms-outlook 'Quote request.msg'"),
])
def test_received_msg_gives_the_fields_of_its_internet_headers(name: str, path: str) -> None:
    email = only(forwarded(name))
    assert email.dedupe_key == QUOTE == email.message_id
    assert email.in_reply_to == "offer-7@corp.example"
    assert email.references == ("offer-6@corp.example", "offer-7@corp.example")
    assert email.subject == "Quote request – 50 units"
    assert email.from_address == Address("Carol Customer", "carol@customer.example")
    assert email.to == (Address("Alice Agent", "alice@corp.example"),)
    assert email.cc == (Address("Jürgen Müller", "jurgen@customer.example"),)
    assert email.date == datetime(2025, 3, 4, 8, 15, tzinfo=UTC)
    assert email.text_body == "Hello Alice,\r\nplease quote 50 units. Grüße, Carol"
    assert email.html_body == "<p>Hello Alice,<br>please quote 50 units.</p>"
    assert [(a.name, a.content_type, a.size, a.sha256) for a in email.attachments] == [
        ("spec.pdf", "application/pdf", 52, hashlib.sha256(PDF).hexdigest())]
    assert email.attachments[0].content == PDF
    assert email.direction == "incoming"
    assert email.warnings == ()
    assert_attributed_to_alice(email, path)


def test_msg_copy_matches_the_direct_copy_of_the_same_email() -> None:
    """Copy precedence works only if every path gives the same key and content hash."""
    mail = only(direct("original.eml"))
    for name in ("fwd_msg_outlook.eml", "fwd_msg_octet.eml", "fwd_rfc822_outlook.eml"):
        copy = only(forwarded(name))
        assert (copy.dedupe_key, copy.content_hash) == (mail.dedupe_key, mail.content_hash)
    assert [a.sha256 for a in only(forwarded("fwd_msg_outlook.eml")).attachments] == [
        a.sha256 for a in mail.attachments]


def test_draft_without_internet_headers_falls_back_to_mapi_properties() -> None:
    email = only(forwarded("fwd_msg_draft.eml"))
    assert email.message_id is None and email.in_reply_to is None
    assert email.subject == "Revised specs"
    assert email.from_address == Address("Hank Vendor", "hank@vendor.example")
    assert email.to == (Address("Alice Agent", "alice@corp.example"),)
    # a non-ASCII display name must not swallow the address (extract-msg's own header did)
    assert email.cc == (Address("Jürgen Müller", "jurgen@customer.example"),)
    assert email.date is None  # never sent: no submit time
    assert email.text_body == "Hi Alice,\r\nthe revised specs are attached.\r\nHank"
    assert email.html_body is None  # the sender wrote none; none is made up from the text
    assert [(a.name, a.content_type, a.size) for a in email.attachments] == [
        ("specs.zip", "application/zip", 22)]
    assert email.warnings == ()
    assert_attributed_to_alice(email, "part 2: application/vnd.ms-outlook 'Revised specs.msg'")


def test_draft_dedupe_key_is_the_briefs_fallback_sha256() -> None:
    """No Message-ID: sha256 of From, To, Cc, Date, Subject and text body (written out here
    from the brief's definition, fields joined by U+001F, line ends normalised)."""
    fields = ["hank@vendor.example", "alice@corp.example", "jurgen@customer.example", "",
              "Revised specs", "Hi Alice,\nthe revised specs are attached.\nHank"]
    expected = "sha256:" + hashlib.sha256("\x1f".join(fields).encode()).hexdigest()
    first, again = only(forwarded("fwd_msg_draft.eml")), only(forwarded("fwd_msg_draft.eml"))
    assert first.dedupe_key == again.dedupe_key == expected
    content = hashlib.sha256("\x1f".join(["hank@vendor.example", "", "Revised specs"])
                             .encode()).hexdigest()
    assert first.content_hash == content


def test_committed_msg_files_read_without_warnings() -> None:
    for name in ("original.msg", "draft.msg"):
        message, warnings = read_msg(fixture(name))
        assert warnings == [], name
        assert message["Subject"]
