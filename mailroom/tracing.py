"""The trace-event emitter: every stage says what it did with each message, and why.

One :class:`Tracer` per stage process. Events go to ``settings.topic("trace")`` in
:class:`~mailroom.records.TraceColumns` records: the events a stage gathered (:meth:`Tracer.add`)
are sent by :meth:`Tracer.send` as one record per trace partition their keys fall in — the
partition the producer's own partitioner gives the key (the dedupe key, or the raw identity
before unwrap) — so ``mailroom trace`` still finds every stage's step of one message in one
partition. A record per event cost more than the work it described: four events an email, each
built, encoded, produced, consumed, decoded and stored on its own, were about a sixth of the
pipeline's CPU. Within a record the events travel column by column and each detail as JSON
text: no record object, no dict and no Avro map per event, on either side of the topic.

Sending is asynchronous; the stage runner sends a unit's events and then flushes the producer
before it commits, so a committed message always has its trace events on the broker (at least
once, like the outputs). Readers take every record kind: :func:`events_of` (older writers sent
a ``TraceBatch`` of event records, or one ``TraceEvent`` record per event).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from mailroom.codec import Codec
from mailroom.errors import MalformedRecordError
from mailroom.partitioning import partition_of
from mailroom.records import TraceBatch, TraceColumns, TraceEvent
from mailroom.settings import Settings
from mailroom.stage.types import Source

#: Events per record at most: ~300 bytes each (a dead letter's reason up to ~1.3 KB), well
#: under the broker's record size limit.
MAX_EVENTS_PER_RECORD = 256

def events_of(codec: Codec, value: bytes) -> list[TraceEvent]:
    """The events of one trace-topic value, whichever kind of record it is."""
    record = codec.decode_any(value)
    if isinstance(record, TraceColumns):
        return record.trace_events()
    if isinstance(record, TraceBatch):
        return list(record.events)
    if isinstance(record, TraceEvent):
        return [record]
    raise MalformedRecordError(f"expected trace events, got a {record.SCHEMA} record")


def detail_json(detail: Mapping[str, str] | None) -> str:
    """A detail as the JSON text a :class:`TraceColumns` carries (values made strings, as a
    :class:`TraceEvent` makes them). ASCII only: any text, lone surrogates included, then
    encodes as an Avro string."""
    if not detail:
        return "{}"
    if not all(type(v) is str for v in detail.values()):
        detail = {str(k): str(v) for k, v in detail.items()}
    return json.dumps(detail)


#: One gathered event: key, event, at (ms), message_id, dedupe_key, raw_identity, source topic,
#: partition, offset, detail as JSON — the columns of a TraceColumns record, row by row.
_Row = tuple[str, str, int, str | None, str | None, str | None, str | None, int | None,
             int | None, str]
_COLUMNS = ("keys", "events", "at", "message_ids", "dedupe_keys", "raw_identities",
            "source_topics", "source_partitions", "source_offsets", "details")


class Tracer:
    def __init__(self, producer: Any, codec: Codec, settings: Settings, stage: str) -> None:
        self.producer = producer
        self.codec = codec
        self.stage = stage
        self.topic = settings.topic("trace")
        #: gathered events by the stage that decided them (the tracer's own, or another one's
        #: run in the same process: unwrap's with ``route_in_unwrap``)
        self._pending: dict[str, list[_Row]] = {}

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
        stage: str | None = None,
    ) -> None:
        """Gather one event for the next :meth:`send`; ``stage``: the stage that decided it,
        when not this tracer's."""
        pending = self._pending.get(stage or self.stage)
        if pending is None:
            pending = self._pending[stage or self.stage] = []
        pending.append((
            key, event, time.time_ns() // 1_000_000, message_id, dedupe_key, raw_identity,
            *((source.topic, source.partition, source.offset) if source else (None, None, None)),
            detail_json(detail),
        ))

    def emit(self, key: str, event: str, detail: Mapping[str, str] | None = None,
             **fields: Any) -> None:
        """One event, sent at once (with any gathered before it)."""
        self.add(key, event, detail, **fields)
        self.send()

    def send(self) -> list[Any]:
        """Send the gathered events: one record per trace partition (and per
        :data:`MAX_EVENTS_PER_RECORD`); returns the sends' futures. The caller flushes the
        producer."""
        if not self._pending:
            return []
        partitions = sorted(self.producer.partitions_for(self.topic))
        return [self.producer.send(self.topic, key=key, value=value, partition=partition)
                for partition, key, value in self.records(partitions)]

    def records(self, partitions: list[int]) -> list[tuple[int, bytes, bytes]]:
        """The gathered events as trace records (partition, key, value), given the trace
        topic's partitions; they are no longer gathered."""
        gathered, self._pending = self._pending, {}
        out = []
        for stage, events in gathered.items():
            out += self._records(stage, events, partitions)
        return out

    def _records(self, stage: str, events: list[_Row],
                 partitions: list[int]) -> list[tuple[int, bytes, bytes]]:
        by_partition: dict[int, list[_Row]] = {}
        for e in events:
            by_partition.setdefault(partition_of(e[0].encode("utf-8"), partitions),
                                    []).append(e)
        out = []
        for partition, mine in by_partition.items():
            for start in range(0, len(mine), MAX_EVENTS_PER_RECORD):
                chunk = mine[start:start + MAX_EVENTS_PER_RECORD]
                # The datum straight from the rows (the record class is the readers'): ``at``
                # stays in milliseconds, which the schema's timestamp-millis takes as they are.
                datum: dict[str, Any] = dict(zip(_COLUMNS, map(list, zip(*chunk, strict=True)),
                                                 strict=True))
                datum["stage"] = stage
                out.append((partition, chunk[0][0].encode("utf-8"),
                            self.codec.encode(TraceColumns.SCHEMA, datum)))
        return out

    def discard(self) -> None:
        """Forget the gathered events (a unit given up: they are gathered again when it is
        redone)."""
        self._pending.clear()
