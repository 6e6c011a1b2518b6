"""One parsed original to one Email record: identifiers, parties, dates, markers, content.

The dedupe key and content hash are exactly the ARCHITECTURE brief's definitions:

* dedupe key: the normalised Message-ID; without one, ``sha256:`` + the sha256 hex of From, To,
  Cc, Date, Subject and the text body (each normalised, so a redelivered copy gives the same);
* content hash: sha256 hex of the normalised From address, the Date as a UTC instant and the
  whitespace-collapsed Subject — the same for every copy, whichever path it came through.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.message import Message

from mailroom.maildate import parse_date
from mailroom.msgids import message_ids, normalise_message_id
from mailroom.records.email import Address, Delivery, Email, Markers
from unwrap import reports
from unwrap.addresses import parse_address_list
from unwrap.content import LimitExceeded, collect
from unwrap.context import RawInput, SourcePosition
from unwrap.limits import Limits
from unwrap.parse import (
    first_raw,
    from_line_dropped,
    header,
    header_text,
    raw_header,
    raw_value,
)

_MAX_REFERENCES = 100  # a thread deeper than this gains nothing from more; bounds the record


@dataclass(frozen=True)
class Origin:
    """How an original reached us: the Delivery fields unwrap knows besides the raw record."""

    copy_kind: str = "direct"
    path: tuple[str, ...] = ()
    forwarded_by_user: str | None = None
    forwarder_address: str | None = None
    forward_mailbox_id: str | None = None
    warnings: tuple[str, ...] = ()
    forwarded_by_queue: str | None = None


def collapse(text: str) -> str:
    return " ".join(text.split())


def _body_for_key(text: str | None) -> str:
    if not text:
        return ""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip()


def _sha(*fields: str) -> str:
    return hashlib.sha256("\x1f".join(fields).encode("utf-8", "surrogatepass")).hexdigest()


def dedupe_key(message_id: str | None, from_addr: str, to: list[Address], cc: list[Address],
               date: datetime | None, date_header: str, subject: str, text: str | None) -> str:
    if message_id:
        return message_id
    when = date.isoformat() if date is not None else collapse(date_header)
    return "sha256:" + _sha(from_addr.lower(), ",".join(a.address.lower() for a in to),
                            ",".join(a.address.lower() for a in cc), when, collapse(subject),
                            _body_for_key(text))


def content_hash(from_addr: str, date: datetime | None, subject: str) -> str:
    when = date.isoformat() if date is not None else ""
    return _sha(from_addr.lower(), when, collapse(subject))


_MAX_PROBLEMS = 20  # unparseable entries described per header; more are only counted
_CUT_RETRIES = 10  # commas tried backwards when a cut lands inside a quoted display name


def _too_long(name: str, length: int, limits: Limits) -> LimitExceeded:
    return LimitExceeded("header_too_long",
                         f"the {name} header has {length} characters, over the "
                         f"{limits.max_header_chars}-character limit (unwrap_max_header_chars)")


def _addresses(msg: Message, name: str, warnings: list[str], limits: Limits) -> list[Address]:
    length = len(raw_value(msg, name) or "")
    value = raw_header(msg, name, limits.max_header_chars)
    if not value:
        return []
    if len(value) > limits.max_header_chars:
        if limits.rejects:
            raise _too_long(name, length, limits)
        found, problems, kept = _cut_list(value, limits.max_header_chars)
        warnings.append(f"{name}: header of {length} characters cut at {kept} "
                        f"(unwrap_max_header_chars): the addresses after it were not read")
    else:
        found, problems = parse_address_list(value)
    warnings.extend(f"{name}: {p}" for p in problems[:_MAX_PROBLEMS])
    if len(problems) > _MAX_PROBLEMS:
        warnings.append(f"{name}: {len(problems) - _MAX_PROBLEMS} more unparseable addresses")
    if len(found) > limits.max_recipients:
        if limits.rejects:
            raise LimitExceeded("too_many_recipients",
                                f"the {name} header has {len(found)} addresses, over the "
                                f"limit of {limits.max_recipients} (unwrap_max_recipients)")
        warnings.append(f"{name}: {len(found)} addresses, only the first "
                        f"{limits.max_recipients} kept (unwrap_max_recipients)")
        found = found[: limits.max_recipients]
    return found


def _cut_list(value: str, limit: int) -> tuple[list[Address], list[str], int]:
    """Parse the address list cut at a comma before ``limit``: (addresses, problems, kept
    characters). A cut inside a quoted name would spoil the whole list, so a few earlier
    commas are tried before giving up."""
    end = limit
    for _ in range(_CUT_RETRIES):
        comma = value.rfind(",", 0, end)
        if comma <= 0:
            break
        found, problems = parse_address_list(value[:comma])
        if found:
            return found, problems, comma
        end = comma
    found, problems = parse_address_list(value[:limit])
    return found, problems, limit


def _marker(msg: Message, name: str) -> str | None:
    return header(msg, name) or None


_MARKERS = {"auto-submitted": "auto_submitted", "precedence": "precedence",
            "list-id": "list_id", "x-auto-response-suppress": "x_auto_response_suppress",
            "x-autoreply": "x_autoreply", "x-autorespond": "x_autorespond",
            "return-path": "return_path", "sensitivity": "sensitivity"}
#: Read in one pass over the headers: the markers and what the report checks need.
_ONE_PASS = frozenset(_MARKERS) | reports.HEADERS


def _markers(found: dict[str, str]) -> Markers:
    return Markers(**{_MARKERS[name]: header_text(value) or None
                      for name, value in found.items() if name in _MARKERS})


def normalise(msg: Message, raw: RawInput, origin: Origin, limits: Limits,
              source: SourcePosition | None = None) -> Email:
    warnings = list(origin.warnings)
    from_list = _addresses(msg, "from", warnings, limits)
    sender = _addresses(msg, "sender", warnings, limits)
    to = _addresses(msg, "to", warnings, limits)
    cc = _addresses(msg, "cc", warnings, limits)
    date_header = header(msg, "date")
    date = parse_date(date_header)
    if date_header and date is None:
        warnings.append(f"unreadable Date header: {date_header[:100]!r}")
    subject = header(msg, "subject")
    if len(subject) > limits.max_header_chars:
        if limits.rejects:
            raise _too_long("Subject", len(subject), limits)
        warnings.append(f"Subject of {len(subject)} characters cut at "
                        f"{limits.max_header_chars} (unwrap_max_header_chars)")
        subject = subject[: limits.max_header_chars]
    message_id = normalise_message_id(raw_header(msg, "message-id"))
    content = collect(msg, limits)
    warnings.extend(content.warnings)
    if from_line_dropped(msg):
        warnings.append("a 'From :' header line (space before the colon) was not read as From; "
                        "other programs may show it as the sender")
    from_address = from_list[0] if from_list else None
    from_addr = from_address.address if from_address else ""
    found = first_raw(msg, _ONE_PASS)
    report, notes = reports.classify_with_notes(msg, found)
    warnings.extend(notes)
    references = message_ids(raw_header(msg, "references"))[-_MAX_REFERENCES:]
    in_reply_to = message_ids(raw_header(msg, "in-reply-to"))
    delivery = Delivery(
        mailbox_id=raw.mailbox_id, mailbox_address=raw.mailbox_address,
        owner_kind=raw.owner_kind, owner_id=raw.owner_id, folder=raw.folder,
        copy_kind=origin.copy_kind, raw_identity=_identity(raw), path=origin.path,
        forwarded_by_user=origin.forwarded_by_user,
        forwarder_address=origin.forwarder_address,
        forward_mailbox_id=origin.forward_mailbox_id,
        forwarded_by_queue=origin.forwarded_by_queue,
        source_topic=source.topic if source else None,
        source_partition=source.partition if source else None,
        source_offset=source.offset if source else None,
    )
    return Email(
        dedupe_key=dedupe_key(message_id, from_addr, to, cc, date, date_header, subject,
                              content.text),
        content_hash=content_hash(from_addr, date, subject),
        subject=subject,
        direction=raw.direction,
        delivery=delivery,
        message_id=message_id,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=tuple(references),
        thread_index=raw_header(msg, "thread-index") or None,
        thread_topic=_marker(msg, "thread-topic"),
        from_address=from_address,
        sender=sender[0] if sender else None,
        reply_to=tuple(_addresses(msg, "reply-to", warnings, limits)),
        to=tuple(to),
        cc=tuple(cc),
        bcc=tuple(_addresses(msg, "bcc", warnings, limits)),
        date=date,
        markers=_markers(found),
        report=report,
        text_body=content.text,
        html_body=content.html,
        attachments=tuple(content.attachments),
        warnings=tuple(warnings),
        blobs=tuple(content.blobs),
    )


def _identity(raw: RawInput) -> str:
    try:
        return raw.identity
    except (AttributeError, ValueError):
        return ""
