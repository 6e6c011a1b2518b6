"""TNEF (``winmail.dat``, ``application/ms-tnef``) via tnefparse, with its losses repaired.

Two uses:

* in a forward: Exchange wraps the whole forward in TNEF when it sends "rich text" outside the
  organisation, so the forwarded original travels as an *embedded message* attachment inside
  winmail.dat (or as a .eml/.msg file inside it). :func:`originals` finds those.
* in any email: an Outlook original's own body and files may sit in its winmail.dat.
  :func:`contents` gives them back so the email shows what Outlook showed — embedded messages
  as ``.eml`` files and OLE objects as files too, never dropped.

What tnefparse alone loses, and how it is read here instead:

* **binary properties lose their trailing NUL bytes** (``TNEFMAPI_Attribute.data`` strips them
  to drop the padding), so a file whose last bytes are zeros — every OLE compound file (.doc,
  .xls) ends in a zero-padded sector — came out short (61,534 of 61,952 bytes). A file's bytes
  are taken from ``attAttachData`` (exact), else the property is read with its declared length;
* the **RTF-only body** (Outlook's rich text) was dropped: it is decompressed (compressed-rtf)
  and the HTML or text it encapsulates taken out (RTFDE); RTF that encapsulates neither is kept
  as ``body.rtf`` with a warning;
* an **Exchange sender** (X.500 address) lost From: the SMTP address properties come first;
* **Date** was lost (tnefparse gives FILETIMEs as naive UTC datetimes);
* the **dedupe key** became attMessageID, a hex MAPI key no other copy of the email has: only
  the internet Message-ID property (PidTagInternetMessageId) or the transport headers name it.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import format_datetime, formataddr
from typing import Any

from unwrap import msgfile
from unwrap.parse import decode_bytes, parse_message
from unwrap.synth import Piece, header_pairs, synthesise

TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"

logging.getLogger("tnefparse").setLevel(logging.ERROR)

# MAPI property tags (tnefparse.properties) used here
_SUBJECT = 0x0037
_SUBMIT_TIME = 0x0039
_SENT_REPRESENTING_NAME = 0x0042
_SENT_REPRESENTING_ADDRTYPE = 0x0064
_SENT_REPRESENTING_ADDRESS = 0x0065
_TRANSPORT_HEADERS = 0x007D
_SENDER_NAME = 0x0C1A
_SENDER_ADDRTYPE = 0x0C1E
_SENDER_ADDRESS = 0x0C1F
_DELIVERY_TIME = 0x0E06
_RTF_COMPRESSED = 0x1009
_MESSAGE_ID = 0x1035
_IN_REPLY_TO = 0x1042
_REFERENCES = 0x1039
_ATTACH_DATA_OBJ = 0x3701
_ATTACH_MIME_TAG = 0x370E
_SENDER_SMTP = 0x5D01
_SENT_REPRESENTING_SMTP = 0x5D02
_ATTACH_RENDDATA = 0x9002  # starts each attachment's objects
_ATTACH_DATA = 0x800F
_ATTACHMENT_PROPS = 0x9005
_MAPI_PROPS = 0x9003
_DATE_SENT = 0x8005

_IMESSAGE = bytes.fromhex("0703020000000000c000000000000046")
_ISTORAGE = bytes.fromhex("0b0d020000000000c000000000000046")


class UnreadableTnef(ValueError):
    """Not TNEF data tnefparse can read."""


@dataclass(frozen=True)
class TnefOriginal:
    message: Message
    label: str  # where inside the TNEF it was found, for the delivery path
    notes: tuple[str, ...] = ()  # what was guessed or could not be read


@dataclass
class TnefContents:
    text: str | None = None
    html: str | None = None
    pieces: list[Piece] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was guessed or could not be read


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


def _exact(prop: Any, container: bytes) -> bytes | None:
    """A binary property's bytes as long as declared (tnefparse's ``data`` strips trailing
    NULs). The value sits in ``container`` right after its 4-byte length."""
    raw = getattr(prop, "raw_data", None)
    item = raw[0] if isinstance(raw, list) and raw and isinstance(raw[0], bytes) else None
    if item is None:
        return None
    at = container.find(item)
    while at >= 4:
        (length,) = struct.unpack_from("<I", container, at - 4)
        if len(item) - 4 < length <= len(item):
            return item[:length]
        at = container.find(item, at + 1)
    return None


def _attachment_objects(tnef: Any) -> list[dict[int, bytes]]:
    """Per attachment (in tnefparse's order), its objects' exact bytes by attribute name."""
    found: list[dict[int, bytes]] = []
    for obj in tnef.objects:
        if obj.name == _ATTACH_RENDDATA:
            found.append({})
        if found and obj.level == 2:
            found[-1].setdefault(obj.name, obj.data)
    return found


def _object_bytes(att: Any, objects: dict[int, bytes]) -> bytes | None:
    """The attachment's PR_ATTACH_DATA_OBJ value, exactly (an embedded message or OLE object)."""
    container = objects.get(_ATTACHMENT_PROPS, b"")
    from tnefparse.mapi import decode_mapi

    try:
        props = decode_mapi(container, att.codepage or "cp1252")
    except Exception:  # noqa: BLE001 - unreadable properties: no object
        return None
    for prop in props:
        if prop.name == _ATTACH_DATA_OBJ:
            return _exact(prop, container)
    return None


def _file_bytes(att: Any, objects: dict[int, bytes]) -> bytes:
    exact = objects.get(_ATTACH_DATA)
    if exact is not None:
        return exact
    obj = _object_bytes(att, objects)
    return obj if obj is not None else (att.data if isinstance(att.data, bytes) else b"")


def _name(att: Any, fallback: str) -> str:
    try:
        return _text(att.long_filename()) or fallback
    except Exception:  # noqa: BLE001 - undecodable names fall back to a neutral one
        return fallback


def _embedded(att: Any, objects: dict[int, bytes]) -> Any:
    """The embedded message's TNEF, parsed from its exact bytes when they can be found."""
    exact = _object_bytes(att, objects)
    if exact is not None and exact.startswith(_IMESSAGE):
        try:
            return _load(exact[len(_IMESSAGE):])
        except UnreadableTnef:
            pass
    return att.embed


def _rtf_body(tnef: Any, notes: list[str]) -> tuple[str | None, str | None, Piece | None]:
    """(text, HTML, kept RTF file) from the compressed RTF body, when it is the only body."""
    compressed = None
    for obj in tnef.objects:
        if obj.name == _MAPI_PROPS:
            from tnefparse.mapi import decode_mapi

            try:
                props = decode_mapi(obj.data, tnef.codepage or "cp1252")
            except Exception:  # noqa: BLE001
                continue
            for prop in props:
                if prop.name == _RTF_COMPRESSED:
                    compressed = _exact(prop, obj.data)
    if compressed is None:
        compressed = getattr(tnef, "_rtfbody", None)
    if not compressed:
        return None, None, None
    try:
        from compressed_rtf import decompress

        rtf = decompress(compressed)
    except Exception as exc:  # noqa: BLE001 - a broken stream: say so, keep what we have
        notes.append(f"winmail.dat: the RTF body could not be decompressed ({exc}): lost")
        return None, None, None
    try:
        from RTFDE.deencapsulate import DeEncapsulator

        found = DeEncapsulator(rtf)
        found.deencapsulate()
    except Exception as exc:  # noqa: BLE001 - plain RTF (not encapsulated) or malformed
        notes.append(f"winmail.dat: the body is RTF without encapsulated HTML or text "
                     f"({type(exc).__name__}): kept as body.rtf")
        return None, None, Piece("body.rtf", "application/rtf", rtf)
    content = found.content
    if isinstance(content, bytes):
        content = decode_bytes(content, None)
    if found.content_type == "html":
        return None, content, None
    return content, None, None


def _pieces(tnef: Any, notes: list[str]) -> list[Piece]:
    pieces = []
    groups = _attachment_objects(tnef)
    for index, att in enumerate(tnef.attachments):
        objects = groups[index] if index < len(groups) else {}
        if getattr(att, "embed", None) is not None:
            embed = _embedded(att, objects)
            message = _embedded_message(embed, notes)
            subject = message.get("subject") or "embedded message"
            pieces.append(Piece(f"{_text(subject)[:100]}.eml", "message/rfc822",
                                _as_bytes(message)))
            continue
        data = _file_bytes(att, objects)
        ctype = _prop(att.mapi_attrs, _ATTACH_MIME_TAG) or "application/octet-stream"
        if data.startswith(_ISTORAGE):  # an OLE object: the compound file after its IID
            data, ctype = data[len(_ISTORAGE):], "application/x-ole-storage"
        if not data:
            notes.append(f"winmail.dat attachment {index + 1} "
                         f"({_name(att, 'attachment')!r}) has no readable content")
        pieces.append(Piece(_name(att, "attachment"), str(ctype), data))
    return pieces


def _as_bytes(message: Message) -> bytes:
    try:
        return message.as_bytes()
    except Exception:  # noqa: BLE001 - the generator can choke on odd values
        return message.as_string().encode("utf-8", "surrogateescape")


def contents(data: bytes) -> TnefContents:
    """Body, files, embedded messages and notes of an email's winmail.dat."""
    tnef = _load(data)
    found = TnefContents(text=_text(tnef.body), html=_text(tnef.htmlbody))
    if found.text is None and found.html is None:
        found.text, found.html, rtf = _rtf_body(tnef, found.notes)
        if rtf is not None:
            found.pieces.append(rtf)
    found.pieces.extend(_pieces(tnef, found.notes))
    return found


def _address(props: list[Any], smtp: int, address: int, addrtype: int) -> str | None:
    value = _prop(props, smtp)
    if value:
        return str(value)
    value = _prop(props, address)
    kind = str(_prop(props, addrtype) or "SMTP").upper()
    # an Exchange sender's address is an X.500 DN ("/O=ORG/OU=…/CN=…"): no use as From
    if value and kind == "SMTP" and "@" in str(value) and not str(value).startswith("/"):
        return str(value)
    return None


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    # tnefparse gives FILETIMEs as naive datetimes in UTC
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _embedded_message(tnef: Any, notes: list[str] | None = None) -> Message:
    notes = notes if notes is not None else []
    props = list(tnef.mapiprops)
    msgprops = {o.name: o.data for o in tnef.msgprops}
    transport = _prop(props, _TRANSPORT_HEADERS)
    pairs = header_pairs(transport) if transport and ":" in transport else []
    present = {k.lower() for k, _ in pairs}
    sender = (_address(props, _SENDER_SMTP, _SENDER_ADDRESS, _SENDER_ADDRTYPE)
              or _address(props, _SENT_REPRESENTING_SMTP, _SENT_REPRESENTING_ADDRESS,
                          _SENT_REPRESENTING_ADDRTYPE))
    name = _prop(props, _SENDER_NAME) or _prop(props, _SENT_REPRESENTING_NAME)
    when = _utc(_prop(props, _SUBMIT_TIME)) or _utc(_prop(props, _DELIVERY_TIME))
    if when is None and isinstance(msgprops.get(_DATE_SENT), datetime) and "date" not in present:
        when = msgprops[_DATE_SENT].replace(tzinfo=UTC)
        notes.append("winmail.dat: the sent time has no zone (attDateSent): read as UTC")
    message_id = _prop(props, _MESSAGE_ID)
    fallback = {
        "Subject": _prop(props, _SUBJECT) or _text(msgprops.get(0x8004)),
        "Message-ID": message_id,
        "In-Reply-To": _prop(props, _IN_REPLY_TO),
        "References": _prop(props, _REFERENCES),
        "From": formataddr((str(name), sender), charset="utf-8") if name and sender else sender,
        "Date": format_datetime(when) if when is not None else None,
    }
    if "from" not in present and not sender and (name or _prop(props, _SENDER_ADDRESS)):
        notes.append("winmail.dat: the sender has no SMTP address (an Exchange X.500 name): "
                     "no From")
    pairs += [(k, str(v)) for k, v in fallback.items() if v and k.lower() not in present]
    text, html = _text(tnef.body), _text(tnef.htmlbody)
    extra: list[Piece] = []
    if text is None and html is None:
        text, html, rtf = _rtf_body(tnef, notes)
        if rtf is not None:
            extra.append(rtf)
    return synthesise(pairs, text, html, extra + _pieces(tnef, notes))


def originals(data: bytes, notes: list[str] | None = None) -> list[TnefOriginal]:
    """Every forwarded original inside a winmail.dat; raises UnreadableTnef. An attached
    message that cannot be read is said in ``notes``."""
    notes = notes if notes is not None else []
    tnef = _load(data)
    found: list[TnefOriginal] = []
    groups = _attachment_objects(tnef)
    for index, att in enumerate(tnef.attachments, 1):
        objects = groups[index - 1] if index - 1 < len(groups) else {}
        if getattr(att, "embed", None) is not None:
            notes: list[str] = []
            message = _embedded_message(_embedded(att, objects), notes)
            found.append(TnefOriginal(message, f"tnef attachment {index}: embedded message",
                                      tuple(notes)))
            continue
        data_ = _file_bytes(att, objects)
        name = _name(att, "")
        if name.lower().endswith(".eml"):
            found.append(TnefOriginal(parse_message(data_), f"tnef attachment {index}: {name}"))
        elif msgfile.looks_like_msg(name, "application/octet-stream", data_):
            try:
                found.append(TnefOriginal(msgfile.message_from_msg(data_),
                                          f"tnef attachment {index}: {name}"))
            except msgfile.UnreadableMsg as exc:
                notes.append(f"tnef attachment {index}: Outlook .msg {name!r} not readable "
                             f"({exc})")
    return found
