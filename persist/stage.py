"""The persist stage: ``mailroom.actions`` and ``mailroom.trace`` → PostgreSQL, exactly once.

Persist has its own consume loop (not the kernel's StageRunner) because its offsets live in
PostgreSQL, committed in the same transaction as the records (:mod:`persist.offsets`). It reuses
the kernel's pieces: the codec, the dead-letter writer, the tracer, fault points, group naming.

Per ``poll()`` batch, in ONE database transaction: thread locks, every plan in its own savepoint
(:mod:`persist.batch`), the trace events into ``message_traces``, dead letters sent *and
acknowledged* (acks=all), persist's own trace events flushed, then the offsets written, fenced
by the claim token. Commit. Only then the same offsets are committed to Kafka — a copy for
``kafka-consumer-groups`` and ``mailroom lag``; a crash before it costs nothing, because on
assignment the consumer seeks to the offsets in PostgreSQL.

A record that cannot be read (not Avro) is dead-lettered; one of an unknown schema pauses its
partition before it (the stage is older than the writer). A deadlock or serialization failure
retries the whole batch. The database going away is an outage (:mod:`mailroom.db.outage`): the
batch is redone once it is back — the connections reopened, the partitions sought to the
offsets stored in PostgreSQL (whether the last commit landed or not), the status ``degraded``
meanwhile — and the process never exits for it; nor for a dead letter or trace event the
broker did not acknowledge in time (the batch is rolled back and redone the same way).
SIGTERM/SIGINT finish the batch in hand, commit and leave the group.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from mailroom import faults, kafka
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.db.outage import LOST, Outage, connected, renewed
from mailroom.deadletters import DeadLetterWriter
from mailroom.errors import MalformedRecordError, UnknownSchemaError
from mailroom.metrics import Batch, Health, StageMetrics, arrived_ms, consumer_lag, serve
from mailroom.records import TraceEvent
from mailroom.records.action import Plan
from mailroom.settings import Settings
from mailroom.stage.execute import group_id
from mailroom.stage.loop import Dependencies, poll_until_stopped, stop_signals
from mailroom.stage.types import UNDECODABLE, Source
from mailroom.tracing import Tracer
from persist import offsets, traces
from persist.batch import RETRY_BATCH, Item, Result, apply_batch

log = logging.getLogger(__name__)

STAGE = "persist"
AFTER_APPLY = faults.register(
    "persist:after_apply_before_commit", "batch applied in the transaction, not committed")
AFTER_DB_COMMIT = faults.register(
    "persist:after_db_commit_before_kafka_commit",
    "records and offsets committed in PostgreSQL, offsets not yet committed to Kafka")
BATCH_RETRIES = 5


@dataclass
class PersistStatus:
    ready: bool = False
    stopping: bool = False
    degraded: str = ""  # why it cannot work now (PostgreSQL away); empty when it can
    paused: dict[tuple[str, int], str] = field(default_factory=dict)
    plans: int = 0
    traces: int = 0
    dead_lettered: int = 0
    batches: int = 0
    last_loop: float = field(default_factory=time.monotonic)
    # Of the last batch (for the metrics hook): seconds per record, arrival of each plan (ms).
    processing_seconds: list[float] = field(default_factory=list)
    arrivals_ms: list[int] = field(default_factory=list)


@dataclass
class _Batch:
    items: list[Item] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)  # the source of each item
    traces: list[tuple[Source, TraceEvent]] = field(default_factory=list)
    dead: list[tuple[Source, str, str]] = field(default_factory=list)
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)


class PersistStage:
    def __init__(
        self, settings: Settings, *, consumer: Any, producer: Any, conn: psycopg.Connection,
        codec: Codec, blobs: Any = None, status: PersistStatus | None = None,
        database: Callable[..., psycopg.Connection] | None = None,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.conn = conn
        self.codec = codec
        self.status = status or PersistStatus()
        self.group = group_id(settings, STAGE)
        self.dead = DeadLetterWriter(producer, codec, settings, blobs)
        self.tracer = Tracer(producer, codec, settings, STAGE)
        self.keeper = offsets.Keeper(conn, consumer, self.group)
        self.actions_topic = settings.topic("actions")
        self.trace_topic = settings.topic("trace")
        self.on_batch: Callable[[PersistStatus], None] | None = None  # metrics (main wires it)
        # Reopens a connection lost in an outage (``autocommit=`` as for connect); None: never.
        self.database = database
        self.dependencies = Dependencies(self._redo, self.status)

    def stop(self, *_: Any) -> None:
        self.status.stopping = True

    def run(self) -> int:
        with stop_signals(self.stop):
            self.consumer.subscribe([self.actions_topic, self.trace_topic], listener=self.keeper)
            log.info("persist consuming %s and %s as group %s",
                     self.actions_topic, self.trace_topic, self.group)
            poll_until_stopped(self.consumer, self.status, self.settings.stage_max_poll_records,
                               self.process)
        self.consumer.close(autocommit=False)  # leave the group: partitions move at once
        self.producer.flush()
        log.info("persist stopped cleanly")
        return 0

    # --- one batch -----------------------------------------------------------------------------
    def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        self.dependencies.run(lambda: self._claim_or_process(batch), batch)

    def _claim_or_process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        if self.keeper.unclaimed:
            self._claim_unclaimed(batch)
        else:
            self._process(batch)

    def _claim_unclaimed(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Partitions assigned while PostgreSQL was away: claim them now (which seeks those
        with a stored offset to it) and let the next poll bring every partition's records
        again — a partition without a stored offset too, or the batch in hand would be skipped
        (its position is already past it)."""
        sought = self.keeper.claim_unclaimed()
        for tp, records in batch.items():
            if records and tp not in sought and tp in self.consumer.assignment():
                self.consumer.seek(tp, records[0].offset)

    def _redo(self, batch: dict[TopicPartition, list[Any]], outage: Outage,
              exc: Exception) -> None:
        """Wait for the dependency, reopen lost connections, seek the batch's partitions to
        their stored offsets (the first offsets while PostgreSQL is still away); the next poll
        redoes the batch."""
        wait_s = outage.next_wait(exc)
        self.status.degraded = outage.reason
        time.sleep(wait_s)
        stored: dict[tuple[str, int], int | None] = {}
        database = self.database
        if database is not None:
            try:
                self.conn = renewed(self.conn, database)
                self.keeper.conn = self.conn
                stored = offsets.stored_offsets(self.conn, self.group)
                self.conn.commit()
                blobs = self.dead.blobs
                if isinstance(blobs, BlobStore):
                    blobs.conn = renewed(blobs.conn, lambda: database(autocommit=True))
            except LOST:
                stored = {}  # still away: the batch's first offsets, and wait again
        assigned = self.consumer.assignment()
        for tp, records in batch.items():
            if records and tp in assigned and (tp.topic, tp.partition) not in self.status.paused:
                at = stored.get((tp.topic, tp.partition))
                self.consumer.seek(tp, records[0].offset if at is None else at)

    def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        began = time.monotonic()
        work = self._decode(batch)
        for attempt in range(1, BATCH_RETRIES + 1):
            try:
                with self.conn.transaction():
                    self._apply(work)
                break
            except offsets.Fenced as exc:
                log.warning("%s", exc)
                return
            except psycopg.Error as exc:
                if exc.sqlstate not in RETRY_BATCH or attempt == BATCH_RETRIES:
                    raise
                log.warning("batch hit %s (try %d); retrying", exc.sqlstate, attempt)
                time.sleep(0.05 * 2 ** attempt)
        faults.point(self.settings, AFTER_DB_COMMIT)
        self.status.batches += 1
        try:
            self.consumer.commit(
                {tp: OffsetAndMetadata(off, "", -1) for tp, off in work.next_offsets.items()})
        except KafkaError as exc:  # a copy only: PostgreSQL has the offsets
            log.warning("committing the offsets' copy to Kafka failed: %s", exc)
        if self.on_batch is not None:
            n = len(work.items) + len(work.traces) + len(work.dead)
            self.status.processing_seconds = [(time.monotonic() - began) / max(n, 1)] * n
            self.status.arrivals_ms = [arrived_ms(s.headers, s.timestamp) for s in work.sources]
            self.on_batch(self.status)

    def _decode(self, batch: dict[TopicPartition, list[Any]]) -> _Batch:
        work = _Batch()
        for tp, records in batch.items():
            for record in records:
                source = Source.of(record)
                try:
                    if record.value is None:
                        raise MalformedRecordError("the record has no value (a tombstone)")
                    if record.topic == self.trace_topic:
                        work.traces.append(
                            (source, self.codec.decode_record(record.value, TraceEvent)))
                    else:
                        plan = self.codec.decode_record(record.value, Plan)
                        work.items.append(Item(plan, record.value, record.timestamp))
                        work.sources.append(source)
                except UnknownSchemaError as exc:
                    self.status.paused[(tp.topic, tp.partition)] = str(exc)
                    log.error("PAUSED %s at offset %d: %s", tp, record.offset, exc)
                    self.consumer.seek(tp, record.offset)
                    self.consumer.pause(tp)
                    break
                except MalformedRecordError as exc:
                    work.dead.append((source, UNDECODABLE, str(exc)))
                work.next_offsets[tp] = record.offset + 1
        return work

    def _apply(self, work: _Batch) -> None:
        results = apply_batch(self.conn, self.codec, work.items) if work.items else []
        self._store_traces(work.traces)
        futures = [self._dead_letter(src, code, reason) for src, code, reason in work.dead]
        for source, result in zip(work.sources, results, strict=True):
            futures.extend(self._report(source, result))
        timeout = self.settings.kafka_request_timeout_ms / 1000
        for future in futures:  # dead letters acknowledged before the offset past them
            future.get(timeout=timeout)
        self.producer.flush(timeout=timeout)
        offsets.store(self.conn, self.group, work.next_offsets, self.keeper.tokens)
        faults.point(self.settings, AFTER_APPLY)
        self.status.plans += len(work.items)
        self.status.traces += len(work.traces)

    def _report(self, source: Source, result: Result) -> list[Any]:
        """Trace events for one plan (and what it re-evaluated); its dead letter, if any."""
        item_key = source.key_text
        if result.failure is not None:
            return [self._dead_letter(source, *result.failure)]
        assert result.applied is not None
        self.tracer.emit(item_key, result.applied.event, result.applied.detail, source=source,
                         dedupe_key=item_key)
        for plan, applied in result.reevaluated:
            self.tracer.emit(plan.dedupe_key, applied.event, applied.detail,
                             message_id=plan.message_id, dedupe_key=plan.dedupe_key)
        return []

    def _dead_letter(self, source: Source, code: str, reason: str) -> Any:
        self.status.dead_lettered += 1
        self.tracer.emit(source.key_text, "dead_lettered",
                         {"reason_code": code, "reason": reason[:1000]}, source=source)
        return self.dead.send(STAGE, code, reason, source, 1)

    def _store_traces(self, events: list[tuple[Source, TraceEvent]]) -> None:
        traces.store(self.conn, events)  # COPY: the high-volume table (persist/traces.py)


def main(settings: Settings, args: argparse.Namespace | None = None) -> int:
    codec = Codec.from_settings(settings)

    def database(autocommit: bool = False) -> psycopg.Connection:  # also after an outage
        return connect(settings, autocommit=autocommit)

    # Started while PostgreSQL is down (a supervisor restarting it then): wait, do not exit.
    conn = connected(database, "start of persist")
    client = "mailroom-persist"
    consumer = kafka.make_consumer(settings, group_id(settings, STAGE), client_id=client)
    producer = kafka.make_producer(settings, client_id=client)
    # Its own autocommit connection: an oversized dead letter's blob must be stored (and
    # committed) before the dead letter is sent, whatever the batch transaction does.
    blobs = BlobStore(connected(lambda: database(autocommit=True), "start of persist"))
    stage = PersistStage(settings, consumer=consumer, producer=producer, conn=conn, codec=codec,
                         blobs=blobs, database=database)
    server = _watch(stage, settings)
    try:
        return stage.run()
    finally:
        if server is not None:
            server.shutdown()
        producer.close()
        stage.conn.close()  # the connections of now: an outage may have replaced them
        blobs.conn.close()


def _watch(stage: PersistStage, settings: Settings) -> Any:
    """Metrics and health endpoints (settings.metrics_port; 0: none)."""
    if not settings.metrics_port:
        return None
    metrics = StageMetrics(STAGE)
    status = stage.status
    stale_s = settings.kafka_max_poll_interval_ms / 1000
    stage.on_batch = lambda s: metrics.batch(Batch(
        s.plans + s.traces, s.plans, s.dead_lettered, 0, s.processing_seconds, s.arrivals_ms,
        consumer_lag(stage.consumer), len(s.paused)))
    return serve(settings, metrics, Health(
        alive=lambda: not status.stopping and time.monotonic() - status.last_loop < stale_s,
        ready=lambda: status.ready and not status.paused and not status.degraded,
    ))
