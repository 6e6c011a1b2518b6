"""Dead letters for the page: ``mailroom dlq``'s reader and retry (:mod:`mailroom.console.ops.dlq`).

What the page adds is only presentation: newest first, a one-line payload summary, and whether
a letter was sent back already — the ``retried`` trace events ``mailroom dlq retry`` emits,
as persist stored them in ``message_traces``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg

from mailroom.codec import Codec
from mailroom.console.ops import dlq
from mailroom.console.web.data.memo import Refreshing
from mailroom.settings import Settings


@dataclass
class LetterView:
    id: str  # PARTITION:OFFSET on the dlq topic
    stage: str
    reason_code: str
    reason: str
    attempts: int
    source: str
    failed_at: datetime | None
    retries: int  # rounds this message went through before this letter
    summary: str
    retried_at: datetime | None = None  # when this letter was sent back (None: not yet)


class LetterCache:
    """The dead-letter topic read at most every ``min_interval_s`` for all pages together, by
    one kept reader (:class:`mailroom.console.ops.dlq.LetterReader`) that fetches only what
    arrived since its last read: fifty people refreshing must not multiply the reads, and a
    consumer made per read cost ~0.1 s of CPU on its metadata alone. A retry from the dashboard
    empties the cache, so its own page shows the result at once."""

    def __init__(self, settings: Settings, codec: Callable[[], Codec],
                 min_interval_s: float = 5.0) -> None:
        self.settings, self._codec = settings, codec
        self._reader: dlq.LetterReader | None = None
        self._found: Refreshing[list[dlq.Letter]] = Refreshing(min_interval_s,
                                                               stale_s=3 * min_interval_s)

    def read(self) -> list[dlq.Letter]:
        # After a retry there is no previous read: that page waits for the new one.
        return self._found.get(self._read)

    def _read(self) -> list[dlq.Letter]:
        if self._reader is None:  # made at the first read (the codec is loaded on first use)
            self._reader = dlq.LetterReader(self.settings, self._codec())
        return self._reader.read()

    def invalidate(self) -> None:
        self._found.invalidate()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def letters(settings: Settings, codec: Codec, conn: psycopg.Connection | None,
            found: list[dlq.Letter], limit: int = 200
            ) -> tuple[list[LetterView], Counter[tuple[str, str]], list[tuple[datetime, str]]]:
    """Of the letters ``found``: the newest ``limit``, the counts by (stage, reason) of all,
    and when each failed with its ``stage/reason`` (for the chart over time)."""
    counts = dlq.counts(found)
    failures = [(i.letter.failed_at, f"{i.letter.stage}/{i.letter.reason_code}")
                for i in found if i.letter is not None and i.letter.failed_at is not None]
    retried = _retried(settings, conn)
    out = []
    for item in reversed(found[-limit:] if len(found) > limit else found):
        d = item.letter
        if d is None:
            out.append(LetterView(item.id, "?", "unreadable", item.error, 0, "", None, 0, ""))
            continue
        summary = "; ".join(f"{k}={v}" for k, v in dlq.summary(codec, d).items())
        out.append(LetterView(
            item.id, d.stage, d.reason_code, d.reason, d.attempts,
            f"{d.source_topic}/{d.source_partition}@{d.source_offset}", d.failed_at, d.retries,
            summary, retried.get(f"{settings.topic('dlq')}/{item.id}"),
        ))
    out.sort(key=lambda v: (v.failed_at is None, v.failed_at), reverse=True)
    return out, counts, failures


def _retried(settings: Settings, conn: psycopg.Connection | None) -> dict[str, datetime]:
    if conn is None:
        return {}
    rows = conn.execute(
        "SELECT detail->>'dead_letter', max(at) FROM message_traces "
        "WHERE event = 'retried' AND detail->>'dead_letter' LIKE %s GROUP BY 1",
        (settings.topic("dlq") + "/%",),
    ).fetchall()
    return dict(rows)


def retry(settings: Settings, codec: Codec, *, letter_id: str | None = None,
          stage: str | None = None, reason: str | None = None) -> int:
    """``mailroom dlq retry`` with the same selection; returns how many were sent back."""
    chosen = dlq.select(dlq.read_letters(settings, codec), letter_id=letter_id,
                        stage=stage, reason=reason)
    return dlq.retry(settings, codec, chosen) if chosen else 0
