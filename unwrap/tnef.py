"""TNEF (``winmail.dat``, ``application/ms-tnef``) via tnefparse.

Two uses:

* in a forward: Exchange wraps the whole forward in TNEF when it sends "rich text" outside the
  organisation, so the forwarded original travels as an *embedded message* attachment inside
  winmail.dat (or as a .eml/.msg file inside it). :func:`originals` finds those.
* in any email: an Outlook original's own body and files may sit in its winmail.dat.
  :func:`contents` gives them back so the email shows what Outlook showed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import Message
from email.utils import format_datetime
from typing import Any

from unwrap import msgfile
from unwrap.parse import decode_bytes, parse_message
from unwrap.synth import Piece, header_pairs, synthesise

TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"

logging.getLogger("tnefparse").setLevel(logging.ERROR)

# MAPI property tags (tnefparse.properties) used here
_SUBJECT = 0x0037
_SUBMIT_TIME = 0x0039
_TRANSPORT_HEADERS = 0x007D
_SENDER_NAME = 0x0C1A
_SENDER_ADDRESS = 0x0C1F
_MESSAGE_ID = 0x1035
_ATTACH_MIME_TAG = 0x370E
_ATTSUBJECT = 0x8004
_ATTMESSAGEID = 0x8009


class UnreadableTnef(ValueError):
    """Not TNEF data tnefparse can read."""


@dataclass(frozen=True)
class TnefOriginal:
    message: Message
    label: str  # where inside the TNEF it was found, for the delivery path


def is_tnef(name: str, ctype: str, data: bytes) -> bool:
    return data.startswith(TNEF_SIGNATURE) and (
        ctype in {"application/ms-tnef", "application/vnd.ms-tnef"}
        or name.lower() == "winmail.dat" or ctype == "application/octet-stream")


def _load(data: bytes) -> Any:
    from tnefparse.tnef import TNEF  # deferred: only TNEF mail needs it

    try:
        return TNEF(data, do_checksum=False)
    except Exception as exc:  # noqa: BLE001 - any failure of the library means unreadable
        raise UnreadableTnef(f"{type(exc).__name__}: {exc}") from exc


def _prop(props: list[Any], tag: int) -> Any:
    for p in props:
        if p.name == tag:
            try:
                value = p.data
            except Exception:  # noqa: BLE001 - an undecodable property reads as absent
                return None
            if isinstance(value, list):
                value = value[0] if value else None
            if isinstance(value, bytes):
                value = decode_bytes(value.rstrip(b"\x00"), None)
            if isinstance(value, str):
                value = value.rstrip("\x00")
            return value
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return decode_bytes(value.rstrip(b"\x00"), None)
    return str(value).rstrip("\x00")


def _pieces(tnef: Any) -> list[Piece]:
    pieces = []
    for att in tnef.attachments:
        if getattr(att, "embed", None) is not None or not isinstance(att.data, bytes):
            continue
        try:
            name = att.long_filename()
        except Exception:  # noqa: BLE001 - undecodable names fall back to a neutral one
            name = "attachment"
        ctype = _prop(att.mapi_attrs, _ATTACH_MIME_TAG) or "application/octet-stream"
        pieces.append(Piece(_text(name) or "attachment", str(ctype), att.data))
    return pieces


def contents(data: bytes) -> tuple[str | None, str | None, list[Piece]]:
    """(text body, HTML body, files) of an email's winmail.dat."""
    tnef = _load(data)
    return _text(tnef.body), _text(tnef.htmlbody), _pieces(tnef)


def _embedded_message(tnef: Any) -> Message:
    props = list(tnef.mapiprops)
    msgprops = {o.name: o.data for o in tnef.msgprops}
    transport = _prop(props, _TRANSPORT_HEADERS)
    pairs = header_pairs(transport) if transport and ":" in transport else []
    present = {k.lower() for k, _ in pairs}
    sender = _prop(props, _SENDER_ADDRESS)
    name = _prop(props, _SENDER_NAME)
    submitted = _prop(props, _SUBMIT_TIME)
    fallback = {
        "Subject": _prop(props, _SUBJECT) or _text(msgprops.get(_ATTSUBJECT)),
        "Message-ID": _prop(props, _MESSAGE_ID) or _text(msgprops.get(_ATTMESSAGEID)),
        "From": f'"{name}" <{sender}>' if name and sender else sender,
        "Date": format_datetime(submitted) if getattr(submitted, "tzinfo", None) else None,
    }
    pairs += [(k, str(v)) for k, v in fallback.items() if v and k.lower() not in present]
    return synthesise(pairs, _text(tnef.body), _text(tnef.htmlbody), _pieces(tnef))


def originals(data: bytes) -> list[TnefOriginal]:
    """Every forwarded original inside a winmail.dat; raises UnreadableTnef."""
    tnef = _load(data)
    found: list[TnefOriginal] = []
    for index, att in enumerate(tnef.attachments, 1):
        embed = getattr(att, "embed", None)
        if embed is not None:
            found.append(TnefOriginal(_embedded_message(embed), f"tnef attachment {index}: "
                                      "embedded message"))
            continue
        data_ = att.data if isinstance(att.data, bytes) else b""
        try:
            name = att.long_filename() or ""
        except Exception:  # noqa: BLE001
            name = ""
        if name.lower().endswith(".eml"):
            found.append(TnefOriginal(parse_message(data_), f"tnef attachment {index}: {name}"))
        elif msgfile.looks_like_msg(name, "application/octet-stream", data_):
            try:
                found.append(TnefOriginal(msgfile.message_from_msg(data_),
                                          f"tnef attachment {index}: {name}"))
            except msgfile.UnreadableMsg:
                continue
    return found
