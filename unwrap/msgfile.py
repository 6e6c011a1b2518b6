"""Outlook ``.msg`` attachments (OLE compound files) to MIME messages, via extract-msg.

The internet headers Outlook stored with a message it received (PR_TRANSPORT_MESSAGE_HEADERS)
are the best source of Message-ID, Date and addresses: they are the bytes every other copy of
the email carries. A message drafted in Outlook has none; then the MAPI properties stand in,
read here directly rather than through the header extract-msg synthesises from them, which
RFC 2047-encodes a whole ``Name <address>`` when the name is not ASCII (the address is lost) and
formats recipients as ``{name} <{email}>`` without quoting (a comma in a name splits it).
"""

from __future__ import annotations

import logging
from email.message import Message
from email.utils import format_datetime, formataddr
from typing import Any

from unwrap.parse import decode_bytes
from unwrap.synth import Piece, header_pairs, synthesise

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEADERS_PREFIX = "Microsoft Mail Internet Headers Version 2.0"  # older Exchange's first line
_HTML_STREAM = "__substg1.0_10130102"  # PidTagHtml
_SENDER_NAME, _SENDER_ADDRTYPE, _SENDER_ADDRESS, _SENDER_SMTP = (
    "__substg1.0_0C1A", "__substg1.0_0C1E", "__substg1.0_0C1F", "__substg1.0_5D01")
_RECIPIENT_FIELDS = {1: "To", 2: "Cc", 3: "Bcc"}  # PidTagRecipientType (MS-OXOMSG 2.2.3.1)

# extract-msg logs loudly about every odd property; those are our warnings, not log noise.
logging.getLogger("extract_msg").setLevel(logging.ERROR)


class UnreadableMsg(ValueError):
    """Not a .msg file extract-msg can read."""


def looks_like_msg(name: str, ctype: str, data: bytes) -> bool:
    return data.startswith(OLE_SIGNATURE) and (
        name.lower().endswith(".msg") or ctype in {"application/vnd.ms-outlook",
                                                   "application/octet-stream"})


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return decode_bytes(value, None)
    return str(value)


def read_msg(data: bytes) -> tuple[Message, list[str]]:
    """A MIME message equivalent to the .msg bytes, and what could not be read of it (in
    words); raises UnreadableMsg when extract-msg cannot open the file at all."""
    import extract_msg  # deferred: a heavy import only .msg originals need

    try:
        msg = extract_msg.openMsg(data, delayAttachments=False)
    except Exception as exc:  # noqa: BLE001 - any failure of the library means unreadable
        raise UnreadableMsg(f"{type(exc).__name__}: {exc}") from exc
    try:
        warnings: list[str] = []
        return from_msg_object(msg, warnings), warnings
    except Exception as exc:  # noqa: BLE001 - property decoding errors inside the library
        raise UnreadableMsg(f"{type(exc).__name__}: {exc}") from exc
    finally:
        close = getattr(msg, "close", None)
        if close is not None:
            close()


def message_from_msg(data: bytes) -> Message:
    """:func:`read_msg` without its warnings (an .msg inside TNEF); raises UnreadableMsg."""
    return read_msg(data)[0]


def from_msg_object(msg: Any, warnings: list[str] | None = None) -> Message:
    """Map an extract-msg Message (or anything with its attributes) to a MIME message."""
    notes = warnings if warnings is not None else []
    transport = _text(getattr(msg, "headerText", None))
    if transport and transport.startswith(_HEADERS_PREFIX):
        transport = transport[len(_HEADERS_PREFIX):].lstrip()
    pairs = header_pairs(transport) if transport and ":" in transport else []
    present = {k.lower() for k, _ in pairs}
    pairs += [(k, v) for k, v in _mapi_headers(msg).items() if v and k.lower() not in present]
    text = _body(msg, "body", notes)
    return synthesise(pairs, text, _html(msg, notes), _pieces(msg, notes))


def _mapi_headers(msg: Any) -> dict[str, str | None]:
    """Header fields from the MAPI properties, for those the transport headers lack."""
    date = getattr(msg, "date", None)
    headers: dict[str, str | None] = {
        "From": _sender(msg),
        "Subject": _text(getattr(msg, "subject", None)),
        "Message-ID": _text(_stream(msg, "__substg1.0_1035", "messageId")),
        "In-Reply-To": _text(_stream(msg, "__substg1.0_1042", "inReplyTo")),
        "References": _text(_stream(msg, "__substg1.0_1039", "references")),
        "Date": format_datetime(date) if getattr(date, "tzinfo", None) else None,
    }
    recipients = getattr(msg, "recipients", None)
    if recipients is None:  # not an extract-msg object: its formatted strings are all there is
        headers.update(To=_text(getattr(msg, "to", None)), Cc=_text(getattr(msg, "cc", None)))
        return headers
    fields: dict[str, list[str]] = {}
    for recipient in recipients:
        field = _RECIPIENT_FIELDS.get(int(getattr(recipient, "type", 0) or 0) & 0xF)
        address = _text(getattr(recipient, "email", None))
        if field and address:
            fields.setdefault(field, []).append(_format(_text(recipient.name), address))
    headers.update({field: ", ".join(values) for field, values in fields.items()})
    return headers


def _stream(msg: Any, name: str, attribute: str) -> Any:
    """A string property read directly (extract-msg's attributes may consult its synthesised
    header), or the attribute of an object that is not an extract-msg message."""
    get = getattr(msg, "getStringStream", None)
    return get(name) if get is not None else getattr(msg, attribute, None)


def _sender(msg: Any) -> str | None:
    get = getattr(msg, "getStringStream", None)
    if get is None:
        return _text(getattr(msg, "sender", None))
    address = get(_SENDER_SMTP)
    if not address and (get(_SENDER_ADDRTYPE) or "SMTP").upper() == "SMTP":
        address = get(_SENDER_ADDRESS)  # an Exchange sender's is an X.500 DN: not usable
    return _format(get(_SENDER_NAME), address) if address else None


def _format(name: str | None, address: str) -> str:
    """``Name <address>``, the name quoted or RFC 2047-encoded as it needs to be."""
    return formataddr((name or "", address), charset="utf-8") if name != address else address


def _body(msg: Any, attribute: str, notes: list[str]) -> str | None:
    try:
        return _text(getattr(msg, attribute, None))
    except Exception as exc:  # noqa: BLE001 - an RTF body the library cannot decode
        notes.append(f".msg {attribute} not readable ({type(exc).__name__}: {exc})")
        return None


def _html(msg: Any, notes: list[str]) -> str | None:
    """The sender's HTML: PidTagHtml, else HTML encapsulated in the RTF body. Never the HTML
    extract-msg's ``htmlBody`` makes up from a plain-text body: the sender wrote none."""
    get_stream = getattr(msg, "getStream", None)
    if get_stream is None:  # not an extract-msg object
        return _body(msg, "htmlBody", notes)
    html = get_stream(_HTML_STREAM)
    if html is None:
        try:
            rtf = msg.rtfBody
            if rtf:
                from extract_msg.enums import DeencapType

                html = msg.deencapsulateBody(rtf, DeencapType.HTML)  # None: RTF from text
        except Exception as exc:  # noqa: BLE001 - malformed RTF: keep the text body
            notes.append(f".msg HTML in the RTF body not readable ({type(exc).__name__}: {exc})")
            return None
    return _text(html) if html else None


def _pieces(msg: Any, notes: list[str]) -> list[Piece]:
    pieces = []
    for att in getattr(msg, "attachments", []) or []:
        data = getattr(att, "data", None)
        if not isinstance(data, bytes):
            # embedded .msg objects and OLE objects: not file attachments, but not silently
            name = _text(getattr(att, "longFilename", None) or getattr(att, "displayName", None))
            notes.append(f".msg attachment {name or type(data).__name__!r} (an embedded message "
                         "or OLE object) was not kept")
            continue
        name = _text(getattr(att, "longFilename", None) or getattr(att, "shortFilename", None))
        ctype = _text(getattr(att, "mimetype", None)) or "application/octet-stream"
        pieces.append(Piece(name or "attachment", ctype, data))
    return pieces
