"""Identifiers, reports, limits and the Avro record of normalised emails."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pytest
from unwrap_helpers import direct, fixture

from mailroom.records.email import Email
from unwrap.limits import Limits
from unwrap.msgfile import from_msg_object
from unwrap.normalise import normalise_message_id

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "email.v4.avsc"


def one(name_or_bytes: str | bytes, **ctx: object) -> Email:
    result = direct(name_or_bytes, **ctx)
    assert len(result) == 1
    return result[0]


def test_direct_mail_is_its_own_original() -> None:
    email = one("original.eml")
    assert email.delivery.copy_kind == "direct"
    assert email.delivery.forwarded_by_user is None
    assert (email.delivery.owner_kind, email.delivery.owner_id) == ("user", "u-alice")
    assert email.dedupe_key == "Quote-1@customer.example"


def test_missing_message_id_gives_a_deterministic_content_key() -> None:
    plain, qp = one("no_msgid_plain.eml"), one("no_msgid_qp.eml")
    assert plain.message_id is None
    assert plain.dedupe_key.startswith("sha256:") and len(plain.dedupe_key) == 71
    # the same email redelivered in another transfer encoding meets its first copy
    assert plain.dedupe_key == qp.dedupe_key == one("no_msgid_plain.eml").dedupe_key
    assert plain.subject == "Call me back"
    assert plain.date == datetime(2025, 3, 10, 21, 45, tzinfo=UTC)


def test_same_message_id_with_other_content_is_a_collision() -> None:
    real, forged = one("original.eml"), one("same_msgid_forged.eml")
    assert real.dedupe_key == forged.dedupe_key
    assert real.content_hash != forged.content_hash


@pytest.mark.parametrize("value, expected", [
    ("<Quote-1@Customer.Example>", "Quote-1@customer.example"),
    ("  < a b@X.ORG >  ", "ab@x.org"),
    ("no-brackets@Host", "no-brackets@host"),
    ("", None),
    ("<>", None),
])
def test_message_id_normalisation(value: str, expected: str | None) -> None:
    assert normalise_message_id(value) == expected


@pytest.mark.parametrize("name, kind, detail, failed", [
    ("report_bounce.eml", "bounce", "failed", ("bob@other.example",)),
    ("report_delayed.eml", "delayed", "delayed", ()),
    ("report_read_receipt.eml", "read_receipt",
     "manual-action/MDN-sent-manually; displayed", ()),
    ("report_feedback.eml", "feedback_report", "abuse", ()),
    ("original.eml", "none", None, ()),
])
def test_report_kinds(name: str, kind: str, detail: str | None, failed: tuple[str, ...]) -> None:
    report = one(name).report
    assert (report.kind, report.detail, report.failed_recipients) == (kind, detail, failed)


def test_markers() -> None:
    assert one("report_feedback.eml").markers.auto_submitted == "auto-generated"


def test_oversized_attachment_is_kept_without_content() -> None:
    email = one("original.eml", limits=Limits(max_attachment_bytes=10))
    (att,) = email.attachments
    assert (att.content, att.blob_ref, att.size) == (None, None, 52)
    assert att.omitted and "10-byte" in att.omitted
    assert any("spec.pdf" in w for w in email.warnings)


def test_oversized_attachment_can_dead_letter() -> None:
    from unwrap_helpers import context, raw

    from unwrap.context import Rejection
    from unwrap.unwrap import unwrap

    result = unwrap(raw(fixture("original.eml")),
                    context(limits=Limits(max_attachment_bytes=10, over_limit="reject")))
    assert isinstance(result, Rejection) and result.reason_code == "attachment_too_large"


def test_large_attachment_travels_as_blob() -> None:
    email = one("original.eml", limits=Limits(blob_threshold_bytes=10))
    (att,) = email.attachments
    assert att.content is None and att.blob_ref == att.sha256
    assert [(b.ref, len(b.content)) for b in email.blobs] == [(att.sha256, 52)]


def test_too_large_message_is_a_dead_letter() -> None:
    from unwrap_helpers import context, raw

    from unwrap.context import Rejection
    from unwrap.unwrap import unwrap

    result = unwrap(raw(fixture("original.eml")), context(limits=Limits(max_message_bytes=100)))
    assert isinstance(result, Rejection) and result.reason_code == "too_large"


def test_nul_bytes_and_8bit_headers_are_cleaned() -> None:
    data = (b"From: J\xc3\xbcrgen <j@x.example>\r\nSubject: caf\xe9\x00 au lait\r\n"
            b"Content-Type: text/plain; charset=ks_c_5601-1987\r\n\r\nhello\x00world\r\n")
    email = one(data)
    assert email.subject == "café au lait"
    assert email.from_address is not None and email.from_address.name == "Jürgen"
    assert email.text_body == "helloworld\r\n"


def test_record_round_trips_through_the_avro_schema() -> None:
    email = one("original.eml", limits=Limits(blob_threshold_bytes=10))
    schema = fastavro.parse_schema(json.loads(SCHEMA.read_text()))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, email.to_avro())
    buf.seek(0)
    back = Email.from_avro(fastavro.schemaless_reader(buf, schema))
    assert back == email
    assert back.blobs == ()  # blob bytes never travel in the record


class FakeMsg:
    """What extract-msg's Message offers (no real .msg file could be had: see docs)."""

    header = None
    sender = "Hank Outlook <hank@vendor.example>"
    to = "alice@corp.example"
    cc = None
    subject = "Specs"
    messageId = "<specs-1@vendor.example>"  # noqa: N815 - extract-msg's attribute name
    inReplyTo = None  # noqa: N815
    date = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    body = "See attached."
    htmlBody = b"<p>See attached.</p>"  # noqa: N815

    class Att:
        data = b"PK\x03\x04"
        longFilename = "specs.zip"  # noqa: N815
        shortFilename = "SPECS~1.ZIP"  # noqa: N815
        mimetype = "application/zip"

    attachments = [Att()]


def test_msg_properties_map_to_an_email() -> None:
    from unwrap_helpers import context, raw

    from unwrap.normalise import Origin, normalise

    msg = from_msg_object(FakeMsg())
    email = normalise(msg, raw(b""), Origin(copy_kind="msg"), context().limits)
    assert email.dedupe_key == "specs-1@vendor.example"
    assert email.from_address is not None and email.from_address.address == "hank@vendor.example"
    assert email.date == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert (email.text_body, email.html_body) == ("See attached.", "<p>See attached.</p>")
    assert [(a.name, a.content_type, a.size) for a in email.attachments] == [
        ("specs.zip", "application/zip", 4)]


BOUNCE_WITH = """\
From: Mail Delivery System <MAILER-DAEMON@mx.other.example>
To: alice@corp.example
Subject: Undelivered Mail Returned to Sender
Date: Sat, 08 Mar 2025 12:00:00 +0000
Message-ID: <b2@mx.other.example>
In-Reply-To: <someone-else@corp.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="r-b"

--r-b
Content-Type: text/plain

Your message could not be delivered.
--r-b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.other.example

Final-Recipient: rfc822; bob@other.example
Action: failed
Status: 5.1.1

--r-b
Content-Type: {returned}

From: alice@corp.example
To: bob@other.example
Subject: Hello
Message-ID: < Orig-1@Corp.EXAMPLE >

Hello Bob.
--r-b--
"""


@pytest.mark.parametrize("returned", ["text/rfc822-headers", "message/rfc822"])
def test_a_bounce_names_the_original_it_returns(returned: str) -> None:
    report = one(BOUNCE_WITH.format(returned=returned).encode()).report
    assert (report.kind, report.failed_recipients) == ("bounce", ("bob@other.example",))
    assert report.original_message_id == "Orig-1@corp.example"


def test_a_report_without_returned_message_id_names_none() -> None:
    assert one("report_bounce.eml").report.original_message_id is None  # headers, no ID
