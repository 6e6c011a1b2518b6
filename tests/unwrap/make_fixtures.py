"""Write the unwrap unit-test fixtures (real .eml bytes) into ``fixtures/``.

Run once after changing a fixture: ``.venv/bin/python tests/unwrap/make_fixtures.py``. The files
are committed; the tests read them and never call this. Each forward format is written the way
its client writes it (Outlook/Exchange rfc822, Gmail inline, an .eml typed octet-stream, an
Exchange winmail.dat); the TNEF stream is assembled here byte by byte (tnefparse can only read).
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent / "fixtures"
AUTH_OK = ("Authentication-Results: mx.crm.example; dkim=pass header.d=corp.example;\n"
           " spf=pass smtp.mailfrom=corp.example; dmarc=pass header.from=corp.example\n")

ORIGINAL = """\
Return-Path: <carol@customer.example>
From: Carol Customer <carol@customer.example>
To: Alice Agent <alice@corp.example>
Cc: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jurgen@customer.example>
Subject: =?utf-8?q?Quote_request_=E2=80=93_50_units?=
Date: Tue, 04 Mar 2025 09:15:00 +0100
Message-ID: <Quote-1@Customer.Example>
In-Reply-To: <offer-7@corp.example>
References: <offer-6@corp.example> <offer-7@corp.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="orig-b"

--orig-b
Content-Type: multipart/alternative; boundary="alt-b"

--alt-b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello Alice,
please quote 50 units. Gr=C3=BC=C3=9Fe, Carol
--alt-b
Content-Type: text/html; charset=utf-8

<p>Hello Alice,<br>please quote 50 units.</p>
--alt-b--

--orig-b
Content-Type: application/pdf; name="spec.pdf"
Content-Disposition: attachment; filename="spec.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCg==
--orig-b--
"""

SECOND = """\
From: Dan Buyer <dan@other.example>
To: alice@corp.example
Subject: Invoice 42
Date: Wed, 05 Mar 2025 14:00:00 +0000
Message-ID: <inv-42@other.example>
Content-Type: text/plain; charset=us-ascii

Please find the invoice details below.
"""


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def forward(parts: str, frm: str = "Alice Agent <alice@corp.example>", auth: str = AUTH_OK,
            subject: str = "FW: Quote request", extra: str = "", boundary: str = "fw-b") -> str:
    return (f"{auth}From: {frm}\nTo: forward@crm.example\nSubject: {subject}\n"
            f"Date: Tue, 04 Mar 2025 09:16:02 +0100\nMessage-ID: <fw-{abs(hash(subject)) % 997}"
            f"@corp.example>\n{extra}MIME-Version: 1.0\n"
            f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\n\n"
            f"--{boundary}\nContent-Type: text/plain; charset=us-ascii\n\n\n"
            f"{parts.replace('--fw-b', '--' + boundary)}--{boundary}--\n")


def rfc822(msg: str) -> str:
    return f"--fw-b\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n{msg}\n"


def eml_octet(msg: str, name: str = "Quote request.eml") -> str:
    b64 = base64.encodebytes(crlf(msg)).decode()
    return (f"--fw-b\nContent-Type: application/octet-stream; name=\"{name}\"\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\n"
            f"Content-Transfer-Encoding: base64\n\n{b64}\n")


# --- TNEF ------------------------------------------------------------------------------------
def _tnef_obj(level: int, name: int, kind: int, data: bytes) -> bytes:
    return (struct.pack("<BHHI", level, name, kind, len(data)) + data
            + struct.pack("<H", sum(data) & 0xFFFF))


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _mapi_unicode(tag: int, text: str) -> bytes:
    raw = (text + "\x00").encode("utf-16-le")
    return struct.pack("<HHII", 0x001F, tag, 1, len(raw)) + _pad(raw)


def _mapi_object(tag: int, data: bytes) -> bytes:
    return struct.pack("<HHII", 0x000D, tag, 1, len(data)) + _pad(data)


def _tnef_stream(objects: list[bytes]) -> bytes:
    head = struct.pack("<IH", 0x223E9F78, 0x0001)
    version = _tnef_obj(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))
    codepage = _tnef_obj(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))
    return head + version + codepage + b"".join(objects)


def winmail_dat() -> bytes:
    """A forward as Exchange sends it in rich text: the original as an embedded message."""
    transport = ("From: Erin Example <erin@partner.example>\r\nTo: alice@corp.example\r\n"
                 "Subject: Contract draft\r\nDate: Thu, 06 Mar 2025 08:30:00 +0000\r\n"
                 "Message-ID: <contract-9@partner.example>\r\n")
    props = [_mapi_unicode(0x0037, "Contract draft"), _mapi_unicode(0x007D, transport),
             _mapi_unicode(0x1000, "Draft attached in the portal.")]
    embedded = _tnef_stream([_tnef_obj(1, 0x9003, 0x0006,
                                       struct.pack("<I", len(props)) + b"".join(props))])
    imessage_sig = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
    attach_props = struct.pack("<I", 1) + _mapi_object(0x3701, imessage_sig + embedded)
    outer_body = _tnef_obj(1, 0x800C, 0x0002, b"See below.\x00")  # attBody
    return _tnef_stream([
        outer_body,
        _tnef_obj(2, 0x9002, 0x0006, b"\x01\x00\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00"),
        _tnef_obj(2, 0x9005, 0x0006, attach_props),
    ])


def tnef_part(data: bytes) -> str:
    b64 = base64.encodebytes(data).decode()
    return ("--fw-b\nContent-Type: application/ms-tnef; name=\"winmail.dat\"\n"
            "Content-Disposition: attachment; filename=\"winmail.dat\"\n"
            f"Content-Transfer-Encoding: base64\n\n{b64}\n")


INLINE = f"""{AUTH_OK}From: Alice Agent <alice@corp.example>
To: forward@crm.example
Subject: Fwd: Delivery window
Date: Fri, 07 Mar 2025 10:00:00 +0000
Message-ID: <inline-fw@corp.example>
Content-Type: text/plain; charset=utf-8

FYI

---------- Forwarded message ---------
From: Frank Sender <frank@vendor.example>
Date: Fri, 07 Mar 2025 09:41:12 +0100
Subject: Delivery window
To: Alice Agent <alice@corp.example>

We can deliver on Tuesday between 8 and 10.
Frank
"""

REPORT = """\
From: Mail Delivery System <MAILER-DAEMON@mx.other.example>
To: alice@corp.example
Subject: {subject}
Date: Sat, 08 Mar 2025 12:00:00 +0000
Message-ID: <{mid}@mx.other.example>
{extra}MIME-Version: 1.0
Content-Type: multipart/report; report-type={rtype}; boundary="r-b"

--r-b
Content-Type: text/plain

{human}
--r-b
Content-Type: {ptype}

{machine}
--r-b
Content-Type: text/rfc822-headers

From: alice@corp.example
Subject: Hello
--r-b--
"""

DSN = ("Reporting-MTA: dns; mx.other.example\n\nFinal-Recipient: rfc822; {rcpt}\n"
       "Action: {action}\nStatus: {status}\n")


def reports() -> dict[str, str]:
    def dsn(action: str, status: str, rcpt: str = "bob@other.example") -> str:
        return DSN.format(rcpt=rcpt, action=action, status=status)
    return {
        "report_bounce.eml": REPORT.format(
            subject="Undelivered Mail Returned to Sender", mid="b1", extra="",
            rtype="delivery-status", human="Your message could not be delivered.",
            ptype="message/delivery-status", machine=dsn("failed", "5.1.1")),
        "report_delayed.eml": REPORT.format(
            subject="Delayed Mail (still being retried)", mid="d1", extra="",
            rtype="delivery-status", human="Delivery is delayed.",
            ptype="message/delivery-status", machine=dsn("delayed", "4.4.7")),
        "report_read_receipt.eml": REPORT.format(
            subject="Read: Hello", mid="m1", extra="", rtype="disposition-notification",
            human="Your message was displayed.", ptype="message/disposition-notification",
            machine="Reporting-UA: mail.other.example\nFinal-Recipient: rfc822; bob@other.example"
                    "\nDisposition: manual-action/MDN-sent-manually; displayed\n"),
        "report_feedback.eml": REPORT.format(
            subject="Abuse report", mid="f1", extra="Auto-Submitted: auto-generated\n",
            rtype="feedback-report", human="This is an abuse report.",
            ptype="message/feedback-report",
            machine="Feedback-Type: abuse\nUser-Agent: SomeGenerator/1.0\nVersion: 1\n"),
    }


NO_MSGID = """\
From: Gina <gina@customer.example>
To: alice@corp.example
Subject:   Call me
   back
Date: Mon, 10 Mar 2025 16:45:00 -0500
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: {cte}

{body}
"""


def main() -> None:
    HERE.mkdir(exist_ok=True)
    files: dict[str, str | bytes] = {
        "original.eml": ORIGINAL,
        "fwd_rfc822_outlook.eml": forward(rfc822(ORIGINAL)),
        "fwd_eml_octet.eml": forward(eml_octet(ORIGINAL)),
        "fwd_tnef.eml": forward(tnef_part(winmail_dat()), subject="FW: Contract draft"),
        "fwd_inline.eml": INLINE,
        "fwd_several.eml": forward(rfc822(ORIGINAL) + rfc822(SECOND), subject="FW: two"),
        "fwd_nested.eml": forward(rfc822(forward(rfc822(ORIGINAL), auth="",
                                                 subject="FW: inner", boundary="in-b")),
                                  subject="FW: FW: Quote request"),
        "fwd_no_original.eml": forward("", subject="Lunch?"),
        "spoof_not_forwarder.eml": forward(rfc822(ORIGINAL), frm="Eve <eve@evil.example>",
                                           auth=""),
        "spoof_quoted_local.eml": forward(rfc822(ORIGINAL),
                                          frm='"alice@corp.example"@evil.example', auth=""),
        "spoof_display_name.eml": forward(rfc822(ORIGINAL),
                                          frm="alice@corp.example <eve@evil.example>", auth=""),
        "spoof_two_from.eml": forward(rfc822(ORIGINAL),
                                      frm="alice@corp.example, eve@evil.example", auth=""),
        "spoof_forged_authres.eml": forward(rfc822(ORIGINAL), auth=(
            "Authentication-Results: mx.crm.example; dkim=fail header.d=corp.example;\n"
            " spf=fail smtp.mailfrom=evil.example; dmarc=fail header.from=corp.example\n"
            "Authentication-Results: evil.example; dkim=pass; spf=pass;"
            " dmarc=pass header.from=corp.example\n")),
        "spoof_authres_other_domain.eml": forward(rfc822(ORIGINAL), auth=(
            "Authentication-Results: mx.crm.example; dmarc=pass header.from=evil.example\n")),
        "no_msgid_plain.eml": NO_MSGID.format(cte="8bit", body="Ring me at 5. Danke schön."),
        "no_msgid_qp.eml": NO_MSGID.format(cte="quoted-printable",
                                           body="Ring me at 5. Danke sch=C3=B6n.   "),
        "same_msgid_forged.eml": ORIGINAL.replace("Subject: =?utf-8?q?Quote_request_=E2=80=93_"
                                                  "50_units?=", "Subject: Wire the money"),
        **reports(),
    }
    for name, content in files.items():
        data = content if isinstance(content, bytes) else crlf(content)
        (HERE / name).write_bytes(data)
    print(f"wrote {len(files)} fixtures to {HERE}")


if __name__ == "__main__":
    main()
