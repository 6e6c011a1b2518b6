"""TraceEvent: what one stage did with one message, and why (topic ``trace``).

Three record kinds carry events on the topic, all read by :func:`mailroom.tracing.events_of`:
a :class:`TraceEvent` per record (the first writers), a :class:`TraceBatch` of them, and what
stages write now, :class:`TraceColumns` — a batch column by column, its details as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from mailroom.errors import MalformedRecordError
from mailroom.records.avro import AvroMapped
from mailroom.records.base import now_millis, set_field, utc_millis

# The events stages emit today; a stage may add its own (the schema keeps a plain string).
EVENTS: frozenset[str] = frozenset(
    {
        "fetched",
        "unwrapped",
        "routed",
        "skipped",
        "persisted",
        "parked",
        "dead_lettered",
        "retried",
    }
)


@dataclass(frozen=True, slots=True)
class TraceEvent(AvroMapped):
    SCHEMA: ClassVar[str] = "trace_event"

    key: str  # the dedupe key, or the raw identity before unwrap: the Kafka key
    stage: str
    event: str
    at: datetime = field(default_factory=now_millis)
    message_id: str | None = None
    dedupe_key: str | None = None
    raw_identity: str | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    detail: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_field(self, "at", utc_millis(self.at))
        # A copy, so a caller's later change to its dict cannot alter a frozen record.
        set_field(self, "detail", {str(k): str(v) for k, v in self.detail.items()})


@dataclass(frozen=True, slots=True)
class TraceBatch(AvroMapped):
    """The events of one stage's batch whose keys fall in one partition of the trace topic,
    sent to that partition as one record (:class:`mailroom.tracing.Tracer`)."""

    SCHEMA: ClassVar[str] = "trace_batch"

    events: tuple[TraceEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class TraceColumns(AvroMapped):
    """The events of one stage's batch whose keys fall in one partition of the trace topic,
    column by column (:class:`mailroom.tracing.Tracer`): event n is the n-th item of every
    column. Cheaper to write and read than a :class:`TraceBatch` — no record (dict) per event,
    no map per detail: the detail travels as the JSON text persist stores.

    The columns are the wire's; whether they agree (one item per event in each, every detail a
    JSON object of strings) is checked where they are read: :meth:`trace_events` here, persist's
    own reader (``persist/traces.py``), which copies the columns to its table without building
    an event."""

    SCHEMA: ClassVar[str] = "trace_columns"

    stage: str
    keys: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    at: tuple[datetime, ...] = ()
    message_ids: tuple[str | None, ...] = ()
    dedupe_keys: tuple[str | None, ...] = ()
    raw_identities: tuple[str | None, ...] = ()
    source_topics: tuple[str | None, ...] = ()
    source_partitions: tuple[int | None, ...] = ()
    source_offsets: tuple[int | None, ...] = ()
    details: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        set_field(self, "at", tuple(utc_millis(a) for a in self.at))

    def columns(self) -> tuple[tuple[object, ...], ...]:
        """The per-event columns in :class:`TraceEvent`'s field order (after ``stage``)."""
        return (self.keys, self.events, self.at, self.message_ids, self.dedupe_keys,
                self.raw_identities, self.source_topics, self.source_partitions,
                self.source_offsets, self.details)

    def count(self) -> int:
        """How many events; poison when the columns disagree."""
        n = len(self.keys)
        if any(len(c) != n for c in self.columns()):
            raise MalformedRecordError(
                f"trace_columns record with columns of unequal lengths "
                f"{[len(c) for c in self.columns()]}")
        return n

    def trace_events(self) -> list[TraceEvent]:
        """The events as records (``mailroom trace``, tests); MalformedRecordError when the
        columns disagree or a detail is not a JSON object."""
        self.count()
        return [TraceEvent(key=k, stage=self.stage, event=e, at=at, message_id=m, dedupe_key=d,
                           raw_identity=r, source_topic=st, source_partition=sp,
                           source_offset=so, detail=parse_detail(js))
                for k, e, at, m, d, r, st, sp, so, js in zip(*self.columns(), strict=True)]


def parse_detail(text: str) -> dict[str, str]:
    """A detail from its JSON text: an object of strings, else the record is poison."""
    try:
        detail = json.loads(text)
    except ValueError as exc:
        raise MalformedRecordError(f"trace detail is not JSON: {exc}") from None
    if type(detail) is not dict or not all(type(v) is str for v in detail.values()):
        raise MalformedRecordError(f"trace detail is not a JSON object of strings: {text[:80]!r}")
    return detail
