"""Each forward format, with the exact fields the Email must carry."""

from __future__ import annotations

from datetime import UTC, datetime

from unwrap_helpers import FORWARD_MAILBOX, forwarded

from mailroom.records.email import Address, Email
from unwrap.context import Rejection

QUOTE_KEY = "Quote-1@customer.example"


def only(result: list[Email] | Rejection) -> Email:
    assert isinstance(result, list), result
    assert len(result) == 1, result
    return result[0]


def assert_quote_request(email: Email, copy_kind: str, path: tuple[str, ...]) -> None:
    assert email.dedupe_key == QUOTE_KEY
    assert email.message_id == QUOTE_KEY
    assert email.in_reply_to == "offer-7@corp.example"
    assert email.references == ("offer-6@corp.example", "offer-7@corp.example")
    assert email.subject == "Quote request – 50 units"
    assert email.from_address == Address("Carol Customer", "carol@customer.example")
    assert email.to == (Address("Alice Agent", "alice@corp.example"),)
    assert email.cc == (Address("Jürgen Müller", "jurgen@customer.example"),)
    assert email.date == datetime(2025, 3, 4, 8, 15, tzinfo=UTC)
    assert email.text_body == "Hello Alice,\r\nplease quote 50 units. Grüße, Carol"
    assert email.html_body == "<p>Hello Alice,<br>please quote 50 units.</p>"
    assert [(a.name, a.content_type, a.size) for a in email.attachments] == [
        ("spec.pdf", "application/pdf", 52)]
    assert email.attachments[0].content is not None
    assert email.direction == "incoming"
    d = email.delivery
    assert (d.copy_kind, d.path) == (copy_kind, path)
    assert (d.forwarded_by_user, d.forwarder_address, d.forward_mailbox_id) == (
        "u-alice", "alice@corp.example", FORWARD_MAILBOX)
    assert (d.mailbox_id, d.owner_kind) == (FORWARD_MAILBOX, "forward")
    assert d.raw_identity == f"{FORWARD_MAILBOX}/INBOX/7/1"


def test_outlook_rfc822_forward() -> None:
    email = only(forwarded("fwd_rfc822_outlook.eml"))
    assert_quote_request(email, "forwarded_rfc822", ("part 2: message/rfc822",))
    assert email.warnings == ()


def test_eml_attachment_typed_octet_stream() -> None:
    email = only(forwarded("fwd_eml_octet.eml"))
    assert_quote_request(email, "forwarded_eml",
                         ("part 2: application/octet-stream 'Quote request.eml'",))


def test_every_copy_has_the_same_content_hash() -> None:
    hashes = {only(forwarded(name)).content_hash
              for name in ("fwd_rfc822_outlook.eml", "fwd_eml_octet.eml", "fwd_nested.eml")}
    assert len(hashes) == 1


def test_tnef_winmail_dat_with_embedded_message() -> None:
    email = only(forwarded("fwd_tnef.eml"))
    assert email.dedupe_key == "contract-9@partner.example"
    assert email.subject == "Contract draft"
    assert email.from_address == Address("Erin Example", "erin@partner.example")
    assert email.date == datetime(2025, 3, 6, 8, 30, tzinfo=UTC)
    assert email.text_body == "Draft attached in the portal."
    assert email.delivery.copy_kind == "tnef"
    assert email.delivery.path == ("part 2: application/ms-tnef 'winmail.dat'",
                                   "tnef attachment 1: embedded message")


def test_inline_forward_is_best_effort_and_flagged() -> None:
    email = only(forwarded("fwd_inline.eml"))
    assert email.delivery.copy_kind == "inline"
    assert email.message_id is None
    assert email.dedupe_key.startswith("sha256:")
    assert email.subject == "Delivery window"
    assert email.from_address == Address("Frank Sender", "frank@vendor.example")
    assert email.date == datetime(2025, 3, 7, 8, 41, 12, tzinfo=UTC)
    assert email.text_body == "We can deliver on Tuesday between 8 and 10.\nFrank"
    assert any("best effort" in w for w in email.warnings)


def test_inline_forwards_can_be_switched_off() -> None:
    result = forwarded("fwd_inline.eml", inline_forwards=False)
    assert isinstance(result, Rejection) and result.reason_code == "not_forwarded"


def test_several_originals_give_several_emails() -> None:
    result = forwarded("fwd_several.eml")
    assert isinstance(result, list)
    assert [(e.dedupe_key, e.delivery.path) for e in result] == [
        (QUOTE_KEY, ("part 2: message/rfc822",)),
        ("inv-42@other.example", ("part 3: message/rfc822",)),
    ]
    assert all(e.delivery.forwarded_by_user == "u-alice" for e in result)


def test_nested_forward_is_opened_to_the_original() -> None:
    email = only(forwarded("fwd_nested.eml"))
    assert_quote_request(email, "forwarded_rfc822",
                         ("part 2: message/rfc822", "part 2: message/rfc822"))


def test_nested_forward_past_the_depth_limit_keeps_the_wrapper() -> None:
    from unwrap.limits import Limits

    email = only(forwarded("fwd_nested.eml", limits=Limits(max_depth=1)))
    assert email.subject == "FW: inner"
    assert any("nested deeper than 1" in w for w in email.warnings)


def test_forward_without_original_is_a_dead_letter_by_default() -> None:
    result = forwarded("fwd_no_original.eml")
    assert isinstance(result, Rejection)
    assert result.reason_code == "not_forwarded"


def test_forward_without_original_can_be_accepted() -> None:
    email = only(forwarded("fwd_no_original.eml", non_forwarded="accept"))
    assert email.delivery.copy_kind == "direct"
    assert email.delivery.forwarded_by_user is None
    assert email.subject == "Lunch?"


def test_corrupt_msg_attachment_is_reported_not_raised() -> None:
    from unwrap_helpers import fixture

    data = fixture("fwd_eml_octet.eml").replace(b"Quote request.eml", b"broken.msg")
    body_start = data.index(b"base64\r\n\r\n") + len(b"base64\r\n\r\n")
    end = data.index(b"\r\n\r\n", body_start)
    import base64

    fake = base64.encodebytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    data = data[:body_start] + fake.replace(b"\n", b"\r\n") + data[end:]
    result = forwarded(data)
    assert isinstance(result, Rejection)
    assert result.reason_code == "not_forwarded"
    assert "Outlook .msg not readable" in result.reason
