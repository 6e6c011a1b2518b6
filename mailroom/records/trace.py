"""TraceEvent: what one stage did with one message, and why (topic ``trace``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

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
