"""Find every forwarded original inside a forward-mailbox message.

Looked for, in MIME order, without descending into an original once found:

* ``message/rfc822`` (and ``message/global``) parts — Outlook/Exchange rules, Gmail,
  Thunderbird, Apple Mail "forward as attachment" (also when the part is base64-encoded, which
  RFC 2046 forbids but some gateways do);
* ``.eml`` files, whatever their declared type (usually ``application/octet-stream``), and
  unnamed ``application/octet-stream`` parts that plainly are a message;
* Outlook ``.msg`` files (``msgfile.py``);
* TNEF ``winmail.dat`` wrapping the forward (``tnef.py``).

A forward of a forward (an original that is itself only a wrapper sent by a forwarder of this
mailbox, with no text of its own) is opened in turn, up to ``max_depth`` wrappers deep.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from email.message import Message

from unwrap import msgfile, tnef
from unwrap.addresses import AddressError, ascii_lower, parse_mailbox
from unwrap.content import LimitExceeded, message_bytes
from unwrap.limits import Limits
from unwrap.parse import content_type, filename, parse_message, part_text, payload_bytes, raw_header

_MESSAGE_TYPES = {"message/rfc822", "message/global"}
_FILE_TYPES = {"application/octet-stream", "application/vnd.ms-outlook", "application/ms-tnef",
               "application/vnd.ms-tnef", "application/x-message", "message/x-emlx", "text/plain",
               "application/eml", "application/x-eml"}
_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)
_MAIL_HEADERS = {b"from", b"date", b"subject", b"message-id", b"received", b"to",
                 b"return-path", b"mime-version", b"sender", b"reply-to"}
_MAX_FROM_CHARS = 1_000  # RFC 5321 paths are at most 256 octets; a display name adds a little
_WRAPPER_TEXT_CHARS = 300  # a wrapper's own text: "FYI", a signature, or nothing at all


@dataclass(frozen=True)
class Original:
    message: Message
    copy_kind: str
    path: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def looks_like_mail(data: bytes, needed: int) -> bool:
    """At least ``needed`` well-known mail header fields before the first blank line."""
    head = data[:8192].lstrip()
    end = re.search(rb"\r?\n\r?\n", head)
    block = head[: end.start()] if end else head
    if not _HEADER_LINE.match(block):
        return False
    names = {m.group(1).lower() for m in _HEADER_LINE.finditer(block)}
    return len(names & _MAIL_HEADERS) >= needed


def _inner_message(part: Message) -> Message | None:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        data = payload_bytes(part)
        return parse_message(data) if looks_like_mail(data, 1) else None
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    if cte in ("base64", "quoted-printable"):
        # compat32 parsed the encoded text as if it were the message: decode and parse again
        encoded = message_bytes(inner)
        try:
            data = base64.b64decode(encoded) if cte == "base64" else quopri.decodestring(encoded)
        except (binascii.Error, ValueError):
            return None
        return parse_message(data) if looks_like_mail(data, 1) else None
    return inner


def find_originals(outer: Message, limits: Limits) -> tuple[list[Original], list[str]]:
    """The originals directly inside ``outer`` and warnings about unreadable candidates."""
    found: list[Original] = []
    warnings: list[str] = []
    stack: list[tuple[Message, str]] = [(outer, "")]
    seen = 0
    while stack:
        part, number = stack.pop()
        seen += 1
        if seen > limits.max_parts:
            if limits.rejects:
                raise LimitExceeded("too_many_parts", f"more than {limits.max_parts} MIME parts")
            warnings.append(f"more than {limits.max_parts} MIME parts: the rest were not read")
            break
        ctype = content_type(part)
        payload = part.get_payload()
        if ctype.startswith("multipart/") and isinstance(payload, list):
            children = [p for p in payload if isinstance(p, Message)]
            prefix = f"{number}." if number else ""
            stack.extend((c, f"{prefix}{i}") for i, c in reversed(list(enumerate(children, 1))))
            continue
        if part is outer:
            continue  # a single-part outer message is not itself a forwarded original
        label = f"part {number}: {ctype}"
        if ctype in _MESSAGE_TYPES:
            inner = _inner_message(part)
            if inner is None:
                warnings.append(f"{label}: attached message not readable")
            else:
                found.append(Original(inner, "forwarded_rfc822", (label,)))
            continue
        name = filename(part)
        lname = name.lower()
        candidate = (lname.endswith((".eml", ".msg", ".dat")) or ctype in _FILE_TYPES) and not (
            ctype == "text/plain" and not lname.endswith(".eml"))
        if not candidate:
            continue
        data = payload_bytes(part)
        label = f"{label} {name!r}" if name else label
        _file_original(found, warnings, name, ctype, data, label)
    return found, warnings


def _file_original(found: list[Original], warnings: list[str], name: str, ctype: str,
                   data: bytes, label: str) -> None:
    if tnef.is_tnef(name, ctype, data):
        try:
            notes: list[str] = []
            inside = tnef.originals(data, notes)
            warnings.extend(f"{label}: {note}" for note in notes)
        except tnef.UnreadableTnef as exc:
            warnings.append(f"{label}: winmail.dat not readable ({exc})")
            return
        found.extend(Original(o.message, "tnef", (label, o.label), o.notes) for o in inside)
    elif msgfile.looks_like_msg(name, ctype, data):
        try:
            message, notes = msgfile.read_msg(data)
            found.append(Original(message, "msg", (label,), tuple(f"{label}: {n}" for n in notes)))
        except msgfile.UnreadableMsg as exc:
            warnings.append(f"{label}: Outlook .msg not readable ({exc})")
    elif looks_like_mail(data, 1 if name.lower().endswith(".eml") else 2):
        found.append(Original(parse_message(data), "forwarded_eml", (label,)))
    elif name.lower().endswith(".eml"):
        warnings.append(f"{label}: named .eml but is not a message")


def _own_text(msg: Message) -> str:
    for part in msg.walk():
        if content_type(part) == "text/plain" and not filename(part):
            return part_text(part).strip()
        if content_type(part) in _MESSAGE_TYPES:
            break
    return ""


def is_wrapper(msg: Message, forwarder_addresses: Collection[str]) -> bool:
    """Is this original only another forward by a forwarder of the same mailbox?"""
    value = raw_header(msg, "from")
    if len(value) > _MAX_FROM_CHARS:
        return False  # no plain address is that long; not worth parsing
    try:
        sender = ascii_lower(parse_mailbox(value).address)
    except AddressError:
        return False
    return sender in forwarder_addresses and len(_own_text(msg)) <= _WRAPPER_TEXT_CHARS


def expand(outer: Message, forwarder_addresses: Collection[str], limits: Limits,
           depth: int = 1) -> tuple[list[Original], list[str]]:
    """The originals of ``outer``, opening forwards of forwards up to ``limits.max_depth``."""
    found, warnings = find_originals(outer, limits)
    result: list[Original] = []
    for original in found:
        if is_wrapper(original.message, forwarder_addresses):
            if depth >= limits.max_depth:
                note = (f"forward nested deeper than {limits.max_depth} wrappers: the deepest "
                        "one is kept as the original")
                result.append(replace(original, warnings=original.warnings + (note,)))
                continue
            inner, inner_warnings = expand(original.message, forwarder_addresses, limits,
                                           depth + 1)
            warnings.extend(inner_warnings)
            if inner:
                result.extend(replace(o, path=original.path + o.path) for o in inner)
                continue
        result.append(original)
    return result, warnings
