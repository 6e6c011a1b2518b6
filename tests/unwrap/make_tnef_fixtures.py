"""Write the winmail.dat fixtures of ``test_unwrap_tnef.py`` into ``fixtures/tnef/``.

``.venv/bin/python tests/unwrap/make_tnef_fixtures.py`` — TNEF streams assembled byte by byte
from MS-OXTNEF (attributes, MAPI property blocks, attachments), as Outlook writes them: a body
only in compressed RTF (MS-OXRTFCP, encapsulated HTML per MS-OXRTFEX), a file whose last bytes
are zeros sent both as attAttachData and PR_ATTACH_DATA_BIN, an embedded message and an OLE
object in direct mail, and a forwarded original whose sender is an Exchange (X.500) address.
"""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime
from pathlib import Path

from compressed_rtf import compress
from make_fixtures import _mapi_object, _mapi_unicode, _pad, _tnef_obj, _tnef_stream

HERE = Path(__file__).resolve().parent / "fixtures" / "tnef"
IMESSAGE = bytes.fromhex("0703020000000000c000000000000046")
ISTORAGE = bytes.fromhex("0b0d020000000000c000000000000046")
RTF_HTML = (b"{\\rtf1\\ansi\\ansicpg1252\\fromhtml1 \\deff0{\\fonttbl{\\f0\\fswiss Arial;}}\r\n"
            b"{\\*\\htmltag19 <html>}{\\*\\htmltag50 <body>}Please quote "
            b"{\\*\\htmltag84 <b>}fifty units{\\*\\htmltag92 </b>}."
            b"{\\*\\htmltag58 </body>}{\\*\\htmltag27 </html>}}")
#: An OLE compound file ends in a zero-padded sector: the last bytes of the file are NULs.
ZERO_TAILED = bytes(range(1, 256)) * 240 + b"\x00" * 752


def mapi_binary(tag: int, data: bytes) -> bytes:
    return struct.pack("<HHII", 0x0102, tag, 1, len(data)) + _pad(data)


def mapi_time(tag: int, when: datetime) -> bytes:
    filetime = int((when - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)
    return struct.pack("<HHQ", 0x0040, tag, filetime)


def props(*items: bytes) -> bytes:
    return struct.pack("<I", len(items)) + b"".join(items)


def attachment(objects: list[bytes]) -> list[bytes]:
    rend = _tnef_obj(2, 0x9002, 0x0006, b"\x01\x00\xff\xff\xff\xff" + b"\x00" * 8)
    return [rend, *objects]


def winmail_rtf_only() -> bytes:
    return _tnef_stream([_tnef_obj(1, 0x9003, 0x0006, props(
        _mapi_unicode(0x0037, "Quote"),
        mapi_binary(0x1009, compress(RTF_HTML, compressed=True))))])


def winmail_files() -> bytes:
    """A zero-tailed file (attAttachData and PR_ATTACH_DATA_BIN), an embedded message and an
    OLE object."""
    embedded = _tnef_stream([_tnef_obj(1, 0x9003, 0x0006, props(
        _mapi_unicode(0x0037, "Earlier offer"),
        _mapi_unicode(0x1035, "<offer-3@partner.example>"),
        _mapi_unicode(0x5D01, "erin@partner.example"),
        _mapi_unicode(0x1000, "The earlier offer.")))])
    return _tnef_stream([
        _tnef_obj(1, 0x800C, 0x0002, b"See the files.\x00"),
        *attachment([
            _tnef_obj(2, 0x8010, 0x0001, b"SHEET.XLS\x00"),
            _tnef_obj(2, 0x800F, 0x0006, ZERO_TAILED),
            _tnef_obj(2, 0x9005, 0x0006, props(
                _mapi_unicode(0x3707, "sheet.xls"),
                _mapi_unicode(0x370E, "application/vnd.ms-excel"),
                mapi_binary(0x3701, ZERO_TAILED))),
        ]),
        *attachment([_tnef_obj(2, 0x9005, 0x0006, props(
            _mapi_unicode(0x3001, "Earlier offer"),
            _mapi_object(0x3701, IMESSAGE + embedded)))]),
        *attachment([_tnef_obj(2, 0x9005, 0x0006, props(
            _mapi_unicode(0x3707, "drawing.bin"),
            _mapi_object(0x3701, ISTORAGE + b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 8)))]),
    ])


def winmail_x500_forward(internet_id: bool = True) -> bytes:
    """A forward's embedded original: Exchange sender (X.500), no transport headers; with or
    without the internet Message-ID property (attMessageID, a hex MAPI key, always)."""
    embedded = _tnef_stream([
        _tnef_obj(1, 0x8009, 0x0001, b"00000000A1B2C3D4E5F6\x00"),  # attMessageID (hex)
        _tnef_obj(1, 0x9003, 0x0006, props(
            _mapi_unicode(0x0037, "Contract draft"),
            _mapi_unicode(0x0C1A, "Erin Example"),
            _mapi_unicode(0x0C1E, "EX"),
            _mapi_unicode(0x0C1F, "/O=PARTNER/OU=EXCHANGE/CN=RECIPIENTS/CN=ERIN"),
            _mapi_unicode(0x5D01, "erin@partner.example"),
            mapi_time(0x0039, datetime(2025, 3, 6, 8, 30, tzinfo=UTC)),
            *([_mapi_unicode(0x1035, "<contract-9@Partner.Example>")] if internet_id else []),
            _mapi_unicode(0x1000, "Draft attached in the portal.")))])
    return _tnef_stream([
        _tnef_obj(1, 0x800C, 0x0002, b"See below.\x00"),
        *attachment([_tnef_obj(2, 0x9005, 0x0006, props(
            _mapi_object(0x3701, IMESSAGE + embedded)))]),
    ])


def mail(data: bytes, forward: bool) -> bytes:
    from make_fixtures import AUTH_OK

    head = AUTH_OK if forward else ""
    b64 = base64.encodebytes(data).decode()
    text = (f"{head}From: Alice Agent <alice@corp.example>\nTo: forward@crm.example\n"
            f"Subject: Quote\nDate: Fri, 07 Mar 2025 10:00:00 +0000\n"
            f"Message-ID: <tnef-{len(data)}@corp.example>\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
            "Content-Type: text/plain\n\n\n--b\n"
            'Content-Type: application/ms-tnef; name="winmail.dat"\n'
            'Content-Disposition: attachment; filename="winmail.dat"\n'
            f"Content-Transfer-Encoding: base64\n\n{b64}\n--b--\n")
    return text.replace("\n", "\r\n").encode()


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    (HERE / "rtf_only.eml").write_bytes(mail(winmail_rtf_only(), False))
    (HERE / "files.eml").write_bytes(mail(winmail_files(), False))
    (HERE / "x500_forward.eml").write_bytes(mail(winmail_x500_forward(), True))
    (HERE / "x500_forward_no_id.eml").write_bytes(mail(winmail_x500_forward(False), True))
    print(f"4 files -> {HERE}")


if __name__ == "__main__":
    main()
