"""The trace-event emitter: every stage says what it did with each message, and why.

One :class:`Tracer` per stage process. Events go to ``settings.topic("trace")`` in
:class:`~mailroom.records.TraceBatch` records: the events a stage gathered (:meth:`Tracer.add`)
are sent by :meth:`Tracer.send` as one record per trace partition their keys fall in — the
partition the producer's own partitioner gives the key (the dedupe key, or the raw identity
before unwrap) — so ``mailroom trace`` still finds every stage's step of one message in one
partition. A record per event cost more than the work it described: four events an email, each
built, encoded, produced, consumed, decoded and stored on its own, were about a sixth of the
pipeline's CPU.

Sending is asynchronous; the stage runner sends a unit's events and then flushes the producer
before it commits, so a committed message always has its trace events on the broker (at least
once, like the outputs). Readers take both record kinds: :func:`events_of` (older writers sent
one ``TraceEvent`` record per event).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka.partitioner import murmur2

from mailroom.codec import Codec
from mailroom.errors import MalformedRecordError
from mailroom.records import TraceBatch, TraceEvent
from mailroom.settings import Settings
from mailroom.stage.types import Source

#: Events per record at most: ~300 bytes each (a dead letter's reason up to ~1.3 KB), well
#: under the broker's record size limit.
MAX_EVENTS_PER_RECORD = 256


def partition_of(key: bytes, partitions: list[int]) -> int:
    """The partition kafka-python's default partitioner (the Java client's) gives ``key``."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


def events_of(codec: Codec, value: bytes) -> list[TraceEvent]:
    """The events of one trace-topic value, whichever kind of record it is."""
    record = codec.decode_any(value)
    if isinstance(record, TraceBatch):
        return list(record.events)
    if isinstance(record, TraceEvent):
        return [record]
    raise MalformedRecordError(f"expected trace events, got a {record.SCHEMA} record")


class Tracer:
    def __init__(self, producer: Any, codec: Codec, settings: Settings, stage: str) -> None:
        self.producer = producer
        self.codec = codec
        self.stage = stage
        self.topic = settings.topic("trace")
        self._pending: list[TraceEvent] = []

    def add(
        self,
        key: str,
        event: str,
        detail: Mapping[str, str] | None = None,
        *,
        source: Source | None = None,
        message_id: str | None = None,
        dedupe_key: str | None = None,
        raw_identity: str | None = None,
    ) -> None:
        """Gather one event for the next :meth:`send`."""
        self._pending.append(TraceEvent(
            key=key,
            stage=self.stage,
            event=event,
            message_id=message_id,
            dedupe_key=dedupe_key,
            raw_identity=raw_identity,
            source_topic=source.topic if source else None,
            source_partition=source.partition if source else None,
            source_offset=source.offset if source else None,
            detail=dict(detail or {}),
        ))

    def emit(self, key: str, event: str, detail: Mapping[str, str] | None = None,
             **fields: Any) -> None:
        """One event, sent at once (with any gathered before it)."""
        self.add(key, event, detail, **fields)
        self.send()

    def send(self) -> None:
        """Send the gathered events: one record per trace partition (and per
        :data:`MAX_EVENTS_PER_RECORD`). The caller flushes the producer."""
        if not self._pending:
            return
        events, self._pending = self._pending, []
        partitions = sorted(self.producer.partitions_for(self.topic))
        by_partition: dict[int, list[TraceEvent]] = {}
        for e in events:
            by_partition.setdefault(partition_of(e.key.encode("utf-8"), partitions),
                                    []).append(e)
        for partition, mine in by_partition.items():
            for start in range(0, len(mine), MAX_EVENTS_PER_RECORD):
                chunk = tuple(mine[start:start + MAX_EVENTS_PER_RECORD])
                self.producer.send(self.topic, key=chunk[0].key.encode("utf-8"),
                                   value=self.codec.encode_record(TraceBatch(chunk)),
                                   partition=partition)

    def discard(self) -> None:
        """Forget the gathered events (a unit given up: they are gathered again when it is
        redone)."""
        self._pending.clear()
