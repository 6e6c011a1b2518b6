"""Outlook ``.msg`` attachments (OLE compound files) to MIME messages, via extract-msg.

The internet headers Outlook stored with the message (PR_TRANSPORT_MESSAGE_HEADERS) are the best
source of Message-ID, Date and addresses; without them the MAPI properties stand in.
"""

from __future__ import annotations

import logging
from email.message import Message
from email.utils import format_datetime
from typing import Any

from unwrap.parse import decode_bytes
from unwrap.synth import Piece, header_pairs, synthesise

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

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


def message_from_msg(data: bytes) -> Message:
    """A MIME message equivalent to the .msg bytes; raises UnreadableMsg."""
    import extract_msg  # deferred: a heavy import only .msg originals need

    try:
        msg = extract_msg.openMsg(data, delayAttachments=False)
    except Exception as exc:  # noqa: BLE001 - any failure of the library means unreadable
        raise UnreadableMsg(f"{type(exc).__name__}: {exc}") from exc
    try:
        return from_msg_object(msg)
    except Exception as exc:  # noqa: BLE001 - property decoding errors inside the library
        raise UnreadableMsg(f"{type(exc).__name__}: {exc}") from exc
    finally:
        close = getattr(msg, "close", None)
        if close is not None:
            close()


def from_msg_object(msg: Any) -> Message:
    """Map an extract-msg Message (or anything with its attributes) to a MIME message."""
    header = getattr(msg, "header", None)
    transport = header.as_string() if isinstance(header, Message) else _text(header)
    pairs = header_pairs(transport) if transport and ":" in transport else []
    present = {k.lower() for k, _ in pairs}
    date = getattr(msg, "date", None)
    fallback = {
        "From": _text(getattr(msg, "sender", None)),
        "To": _text(getattr(msg, "to", None)),
        "Cc": _text(getattr(msg, "cc", None)),
        "Subject": _text(getattr(msg, "subject", None)),
        "Message-ID": _text(getattr(msg, "messageId", None)),
        "In-Reply-To": _text(getattr(msg, "inReplyTo", None)),
        "Date": format_datetime(date) if hasattr(date, "tzinfo") and date.tzinfo else None,
    }
    pairs += [(k, v) for k, v in fallback.items() if v and k.lower() not in present]
    html = getattr(msg, "htmlBody", None)
    pieces = []
    for att in getattr(msg, "attachments", []) or []:
        data = getattr(att, "data", None)
        if not isinstance(data, bytes):
            continue  # embedded .msg objects and OLE objects: not file attachments
        name = _text(getattr(att, "longFilename", None) or getattr(att, "shortFilename", None))
        ctype = _text(getattr(att, "mimetype", None)) or "application/octet-stream"
        pieces.append(Piece(name or "attachment", ctype, data))
    return synthesise(pairs, _text(getattr(msg, "body", None)),
                      _text(html) if html else None, pieces)
