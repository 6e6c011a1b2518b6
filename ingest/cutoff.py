"""A mailbox's "process email from": which messages arrived too early, and the record of each skip.

The instant is the mailbox's own (``Mailbox.process_from``, to the second) or else its profile's
``received_after``. A message is judged by its *arrival* at the mail server:

* IMAP: its INTERNALDATE (the server's arrival time), fetched with the sizes before any body;
  the server-side ``SINCE`` only narrows the search (it is day-granular and ignores the time);
* POP3 has no arrival date: the headers are read with ``TOP n 0`` and the arrival is the date of
  the topmost ``Received`` header (the last server's, i.e. the mailbox's own), else the
  ``Date`` header; a message with neither is processed (nothing shows it is too old).

A skip is never silent: each one is a trace event ``skipped`` with the arrival, the cut-off and
how the arrival was read (``mailroom trace`` and the dashboard show it), and its checkpoint
passes it, so it is judged once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.publish import Producer
from mailroom.codec import Codec
from mailroom.maildate import parse_date
from mailroom.settings import Settings
from mailroom.tracing import Tracer

STAGE = "ingest"
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(r"\r?\n[ \t]+")


@dataclass(frozen=True)
class Skip:
    identity: str  # the raw identity the message would have had
    folder: str
    arrived: datetime
    how: str  # "INTERNALDATE", "Received header", "Date header"


def too_early(arrived: datetime | None, cutoff: datetime | None) -> bool:
    """Did a message that arrived at ``arrived`` come before ``cutoff``? Unknown: no."""
    return cutoff is not None and arrived is not None and arrived < cutoff


def reason(skip: Skip, cutoff: datetime) -> str:
    return (f"arrived {skip.arrived.isoformat()} ({skip.how}), before the mailbox's 'process "
            f"email from' {cutoff.astimezone(UTC).isoformat()}")


def arrival_from_headers(head: bytes) -> tuple[datetime | None, str]:
    """(arrival, how it was read) from a message's header block (``TOP n 0``)."""
    end = _HEADER_END.search(head)
    text = (head[: end.start()] if end else head).decode("latin-1")
    fields: list[tuple[str, str]] = []
    for line in _FOLD.sub(" ", text).splitlines():
        name, sep, value = line.partition(":")
        if sep and name and not name[0].isspace():
            fields.append((name.strip().lower(), value.strip()))
    for name, value in fields:  # the topmost Received: the receiving server's own stamp
        if name == "received":
            when = parse_date(value.rpartition(";")[2])
            if when is not None:
                return when, "Received header"
            break
    for name, value in fields:
        if name == "date":
            return parse_date(value), "Date header"
    return None, ""


def record(settings: Settings, codec: Codec, producer: Producer, mailbox: str,
           skips: Iterable[Skip], cutoff: datetime) -> int:
    """One ``skipped`` trace event per skip, flushed (before the checkpoint passes them)."""
    tracer = Tracer(producer, codec, settings, STAGE)
    n = 0
    for skip in skips:
        tracer.add(skip.identity, "skipped", {
            "mailbox": mailbox, "folder": skip.folder, "reason": reason(skip, cutoff),
            "arrived": skip.arrived.isoformat(), "process_from": cutoff.isoformat(),
        }, raw_identity=skip.identity)
        n += 1
    if n:
        tracer.send()
        producer.flush(timeout=60.0)
    return n
