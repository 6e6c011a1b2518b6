"""Every stage's trace events into ``message_traces``: the highest-volume table persist writes
(one row per stage per message), so it is written with COPY, not row by row.

The rows come straight from the decoded trace record (:func:`rows_of`): a ``trace_columns``
record's columns are zipped into rows and each detail's JSON text goes to the ``jsonb`` column
as it came, checked but not rebuilt — no event record, no dict per detail, no JSON written again.
Older record kinds (a ``TraceBatch``, a single ``TraceEvent``) are read through their records.

COPY cannot say ``ON CONFLICT DO NOTHING``, yet a redelivered batch brings the same events again
(the key is the trace record's own topic coordinates and the event's position in it). So: COPY
straight into the table in a savepoint — the common case, ~4x faster than row inserts
(bench/persist.py) — and only if that hits a stored key, roll the savepoint back and take the slow
path: COPY into a session-local staging table, then one INSERT … SELECT … ON CONFLICT DO NOTHING
(which costs as much as row inserts; measured). The staging table is ``ON COMMIT DELETE ROWS`` and
created in the caller's transaction: a rolled-back batch leaves nothing behind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from mailroom.codec import Codec
from mailroom.errors import MalformedRecordError
from mailroom.records import TraceColumns, TraceEvent
from mailroom.records.trace import parse_detail
from mailroom.stage.types import Source
from mailroom.tracing import events_of


class TraceRow(NamedTuple):
    """One row of ``message_traces``, in :data:`COLUMNS` order: an event and its place — the
    trace record it came in, and its position in that record (an older writer's single-event
    record is position 0)."""

    topic: str
    topic_partition: int
    topic_offset: int
    topic_index: int
    key: str
    stage: str
    event: str
    at: datetime
    message_id: str | None
    dedupe_key: str | None
    raw_identity: str | None
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    detail: str  # a JSON object of strings


COLUMNS = ", ".join(TraceRow._fields)

_STAGING = ("CREATE TEMP TABLE IF NOT EXISTS persist_trace_load "
            "(LIKE message_traces INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")

_PER_EVENT = ("keys", "events", "at", "message_ids", "dedupe_keys", "raw_identities",
              "source_topics", "source_partitions", "source_offsets")

#: What JSON may carry and ``jsonb`` refuses: NUL, and a surrogate not in a pair.
_REFUSED = re.compile("[\x00\ud800-\udfff]")


def named(param: str, *, raw_identity: bool = True) -> str:
    """The SQL condition of the rows an identifier in the array parameter ``param`` names — by
    key, Message-ID, dedupe key (and raw identity) — each arm with an index: the Message-ID,
    dedupe key and raw identity indexes hold only rows where that value is not the key
    (migration 0076; where it is, the key's index finds the row)."""
    others = ("message_id", "dedupe_key") + (("raw_identity",) if raw_identity else ())
    arms = [f"key = ANY(%({param})s)"]
    arms += [f"({c} = ANY(%({param})s) AND {c} <> key)" for c in others]
    return "(" + " OR ".join(arms) + ")"


def stored_detail(text: str) -> str:
    """A detail's JSON text as ``jsonb`` takes it: checked (an object of strings, else the
    record is poison) and, only when it holds what ``jsonb`` refuses, rewritten with U+FFFD in
    those places."""
    detail = parse_detail(text)
    if "\\u" in text and any(_REFUSED.search(k) or _REFUSED.search(v)
                             for k, v in detail.items()):
        return json.dumps({_REFUSED.sub("\ufffd", k): _REFUSED.sub("\ufffd", v)
                           for k, v in detail.items()})
    return text


def row_of(source: Source, index: int, event: TraceEvent) -> TraceRow:
    """The row of an event record (older writers' record kinds)."""
    return TraceRow(source.topic, source.partition, source.offset, index, event.key,
                    event.stage, event.event, event.at, event.message_id, event.dedupe_key,
                    event.raw_identity, event.source_topic, event.source_partition,
                    event.source_offset, stored_detail(json.dumps(dict(event.detail))))


def rows_of(codec: Codec, source: Source) -> list[TraceRow]:
    """The rows of one trace-topic record, whichever kind it is (UnknownSchemaError for a
    newer writer's; MalformedRecordError for poison)."""
    assert source.value is not None
    name, datum = codec.decode(source.value)
    if name != TraceColumns.SCHEMA:
        return [row_of(source, n, e) for n, e in enumerate(events_of(codec, source.value))]
    return _column_rows(source, datum)


def _column_rows(source: Source, datum: dict[str, Any]) -> list[TraceRow]:
    columns = [datum[c] for c in _PER_EVENT]
    details = [stored_detail(text) for text in datum["details"]]
    n = len(details)
    if any(len(c) != n for c in columns):
        raise MalformedRecordError(
            f"trace_columns record with columns of unequal lengths "
            f"{[len(c) for c in columns]} and {n} details")
    topic, partition, offset, stage = source.topic, source.partition, source.offset, datum["stage"]
    make = TraceRow._make
    events = zip(*columns, details, strict=True)
    return [make((topic, partition, offset, i, k, stage, e, at, m, d, r, st, sp, so, js))
            for i, (k, e, at, m, d, r, st, sp, so, js) in enumerate(events)]


def _copy(cur: psycopg.Cursor, table: str, rows: Sequence[TraceRow]) -> None:
    with cur.copy(f"COPY {table} ({COLUMNS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def store(conn: psycopg.Connection, rows: Sequence[TraceRow]) -> int:
    """Store the events (inside the caller's transaction); returns how many were new."""
    if not rows:
        return 0
    try:
        with conn.transaction(), conn.cursor() as cur:
            _copy(cur, "message_traces", rows)
        return len(rows)
    except psycopg.errors.UniqueViolation:
        pass  # some were stored before: a redelivered batch
    conn.execute(_STAGING)
    with conn.cursor() as cur:
        _copy(cur, "persist_trace_load", rows)
        cur.execute(f"INSERT INTO message_traces ({COLUMNS}) SELECT {COLUMNS} "
                    "FROM persist_trace_load ON CONFLICT DO NOTHING")
        new = cur.rowcount
        cur.execute("TRUNCATE persist_trace_load")  # a second call in this transaction
    return new
