"""Damage that used to cost data silently: a byte order mark before the headers, CR-only line
ends, a base64-encoded attached message. Each is repaired and the Email says so."""

from __future__ import annotations

import base64

from unwrap_helpers import direct

MAIL = (b"From: Carol <carol@customer.example>\r\nTo: alice@corp.example\r\n"
        b"Subject: Quote\r\nMessage-ID: <q-1@customer.example>\r\n"
        b"Date: Tue, 04 Mar 2025 09:15:00 +0100\r\n\r\nPlease quote 50 units.\r\n")


def test_byte_order_mark_before_the_headers_keeps_them() -> None:
    (email,) = direct(b"\xef\xbb\xbf" + MAIL)
    assert email.subject == "Quote"
    assert email.from_address is not None and email.from_address.address == \
        "carol@customer.example"
    assert email.message_id == "q-1@customer.example"
    assert any("byte order mark" in w for w in email.warnings)


def test_cr_only_line_ends_leave_no_cr_in_headers() -> None:
    (email,) = direct(MAIL.replace(b"\r\n", b"\r"))
    assert email.subject == "Quote"
    assert email.message_id == "q-1@customer.example"
    assert "\r" not in (email.text_body or "")
    assert any("CR only" in w for w in email.warnings)


def test_base64_attached_message_is_stored_decoded() -> None:
    encoded = base64.encodebytes(MAIL).decode()
    outer = ("From: Dan <dan@corp.example>\r\nTo: alice@corp.example\r\nSubject: fyi\r\n"
             "Message-ID: <o-1@corp.example>\r\nMIME-Version: 1.0\r\n"
             'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
             "Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
             "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             f"{encoded}\r\n--b--\r\n").encode()
    (email,) = direct(outer)
    (attached,) = email.attachments
    assert attached.content is not None and attached.content.startswith(b"From: Carol")
    assert attached.name == "Quote.eml"


def test_undecodable_body_bytes_are_a_warning() -> None:
    data = MAIL.replace(b"Please quote", b"Content-Type: text/plain; charset=shift_jis\r\n\r\n"
                        b"\x82\xa0\xff\xfe quote", 1).replace(b"\r\n\r\nContent-Type",
                                                             b"\r\nContent-Type", 1)
    (email,) = direct(data)
    assert "\ufffd" in (email.text_body or "")
    assert any("undecodable" in w and "shift_jis" in w for w in email.warnings)


def test_msg_embedded_objects_are_not_dropped_silently() -> None:
    from types import SimpleNamespace

    from unwrap import msgfile

    notes: list[str] = []
    outlook = SimpleNamespace(attachments=[SimpleNamespace(data=object(),
                                                           longFilename="Inner.msg")])
    assert msgfile._pieces(outlook, notes) == []
    assert "Inner.msg" in notes[0] and "not kept" in notes[0]
