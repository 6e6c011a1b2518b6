"""The stage runner: the one consume → handle → produce → commit loop every stream stage uses.

Delivery: at least once
-----------------------
Per ``poll()`` batch: (1) the durable attempt counter records the ranges about to be processed
(one statement, :mod:`mailroom.attempts`); (2) each record goes through the handler in its
budget (:mod:`mailroom.stage.budget`); outputs, trace events and dead letters are sent with the
idempotent producer (acks=all); (3) the producer is flushed and every dead-letter future waited
on — the broker has acknowledged everything; (4) only then are the offsets committed. A crash
anywhere before (4) redelivers the batch, so outputs may be written twice but never lost; the
next stages dedupe by natural keys (persist's unique keys are the authority).

Why not Kafka transactions (exactly-once read-process-write)? kafka-python 3.0 does implement
them — ``init_transactions``/``begin_transaction``/``send_offsets_to_transaction`` with
``KafkaConsumer.group_metadata()`` for KIP-447 fencing — but the support is young (the
transactional producer landed in 2025, offsets support after it, KIP-654 abort fixes in
2026, and a report of ``commit()`` ignoring its timeout after a broker blip, dpkp/kafka-python
#3121), and it would buy little here: the pipeline's end effect is already exactly once through
persist's natural keys, while transactions would cost a round trip per batch to the transaction
coordinator, force every downstream reader (persist, ``mailroom trace``, ``lag``) to
``read_committed``, and a process killed mid-transaction would hold back the last stable offset
of every output partition until ``transaction.timeout.ms``. The runner keeps the commit in one
place (:meth:`StageRunner._commit`) so a transactional variant can be added there when it has
earned trust.

Failure paths (named, never silent)
-----------------------------------
- not readable Avro → dead letter ``undecodable``; unknown schema fingerprint → the partition is
  paused at that record (error log, status ``paused``), nothing past it is committed;
- handler Rejection / PermanentError → dead letter; TransientError → retry with backoff until
  ``stage_retry_deadline_ms``, then ``retry_exhausted``; any other exception → ``crash`` with a
  traceback summary; over budget → ``timeout``; killed the process repeatedly → ``crash_loop``.
Every dead letter also gets a ``dead_lettered`` trace event keyed by the source key.

Liveness: a batch stops early (commits what is done, seeks back for the rest) when half of
``kafka_max_poll_interval_ms`` has passed, so a slow batch never gets the member evicted.

PostgreSQL away (the attempt counter or a dead letter's blob cannot be written), or the broker
failing the batch (a flush or dead letter not acknowledged in time, after a broker came back):
the batch is redone — its partitions are sought back, its starts released (they are no deaths),
the status says ``degraded`` and the runner waits with a bounded backoff
(:mod:`mailroom.db.outage`) before it polls again; it never exits for it.

SIGTERM/SIGINT: the batch in hand is finished, flushed and committed, the consumer closed
(leaving the group, so its partitions move at once) and ``run`` returns 0.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from kafka import TopicPartition
from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata

from mailroom import faults
from mailroom.attempts import AttemptLog, Standing, Start
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.db.outage import LOST, Outage, renewed
from mailroom.deadletters import DeadLetterWriter
from mailroom.metrics import ARRIVED_HEADER, arrived_ms
from mailroom.settings import Settings
from mailroom.stage.budget import Executor
from mailroom.stage.execute import StageSpec
from mailroom.stage.loop import Dependencies, poll_until_stopped, stop_signals
from mailroom.stage.types import CRASH_LOOP, RETRY_EXHAUSTED, Context, Source, Verdict
from mailroom.tracing import Tracer

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0
NO_CRASH_LIMIT = 2**31  # suspect records still go one by one, never dead-lettered for it
#: Records handed to the executor at once: enough to keep a pool of workers busy; the liveness
#: deadline is checked between slices.
SLICE = 128


@dataclass
class StageStatus:
    """What the runner tells the outside world (the metrics and health server reads it).

    ``ready``: joined and consuming; ``alive``: the loop turned recently (``last_loop``);
    ``paused``: partitions stopped at an unreadable record, with the reason; ``degraded``: why
    the stage cannot work now (PostgreSQL away), empty when it can.
    """

    ready: bool = False
    degraded: str = ""
    stopping: bool = False
    last_loop: float = field(default_factory=time.monotonic)
    paused: dict[tuple[str, int], str] = field(default_factory=dict)
    records_in: int = 0
    records_out: int = 0
    dead_lettered: int = 0
    retried: int = 0
    batches: int = 0
    # Of the last batch only (reset when one starts), for the metrics hook: handler time per
    # record, and when each record's message arrived in Mailroom (ms, mailroom.metrics).
    processing_seconds: list[float] = field(default_factory=list)
    arrivals_ms: list[int] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.paused and not self.degraded


def fault_names(stage: str) -> tuple[str, str]:
    """The stage's fault points (registered when a runner is made)."""
    return f"{stage}:after_begin", f"{stage}:after_produce"


class StageRunner:
    def __init__(
        self,
        spec: StageSpec,
        settings: Settings,
        *,
        consumer: Any,
        producer: Any,
        codec: Codec,
        attempts: AttemptLog,
        executor: Executor,
        blobs: Any = None,
        status: StageStatus | None = None,
        on_batch: Callable[[StageStatus], None] | None = None,
        database: Callable[[], psycopg.Connection] | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.attempts = attempts
        self.executor = executor
        # Deaths of this process that count against the record in flight. Only a handler that
        # runs in this process can kill it; with worker children the pool counts the deaths a
        # record causes itself, and a runner that dies was killed from outside (a deploy, a node
        # drain, the OOM killer) — repeated, that must not dead-letter healthy mail.
        self._crash_limit = NO_CRASH_LIMIT if executor.isolates_crashes else settings.max_attempts
        self.status = status or StageStatus()
        self.on_batch = on_batch  # hook for metrics; called after every committed batch
        self.dead = DeadLetterWriter(producer, codec, settings, blobs)
        self.tracer = Tracer(producer, codec, settings, spec.name)
        self.fault_after_begin, self.fault_after_produce = fault_names(spec.name)
        faults.register(self.fault_after_begin, "attempts recorded, batch not yet handled")
        faults.register(self.fault_after_produce, "outputs flushed, offsets not yet committed")
        self._dead_futures: list[Any] = []
        self.database = database  # reopens the blob store's connection after an outage
        self.dependencies = Dependencies(self._redo, self.status)

    # --- lifecycle -----------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, commit, leave. Safe to call from a signal handler."""
        self.status.stopping = True

    def run(self) -> int:
        topic = self.settings.topic(self.spec.input_topic)
        try:
            with stop_signals(self.stop):
                self.consumer.subscribe([topic])
                log.info(
                    "stage %s consuming %s as group %s",
                    self.spec.name, topic, self.spec.group_id(self.settings),
                )
                poll_until_stopped(
                    self.consumer, self.status, self.settings.stage_max_poll_records,
                    self.process,
                )
        finally:
            self.executor.close()
        # Leave the group now (no commit here: every batch is committed when it ends).
        self.consumer.close(autocommit=False)
        self.producer.flush()
        log.info("stage %s stopped cleanly", self.spec.name)
        return 0

    # --- one batch -----------------------------------------------------------------------------
    def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        self.dependencies.run(lambda: self._process(batch), batch)

    def _redo(self, batch: dict[TopicPartition, list[Any]], outage: Outage,
              exc: Exception) -> None:
        """Redo the batch once the dependency is back: seek back, release the starts (an outage
        is no record's death), wait; the next poll brings the same records again."""
        wait_s = outage.next_wait(exc)  # logs what failed; the wait comes after the seeks
        self.status.degraded = outage.reason
        self._dead_futures.clear()  # the batch's dead letters are sent again with it
        assigned = self.consumer.assignment()
        for tp, records in batch.items():
            if not records:
                continue
            self.attempts.release(tp.topic, tp.partition, records[0].offset)
            if tp in assigned and (tp.topic, tp.partition) not in self.status.paused:
                self.consumer.seek(tp, records[0].offset)
        time.sleep(wait_s)
        blobs = self.dead.blobs
        if self.database is not None and isinstance(blobs, BlobStore):
            # Still away: the next batch meets it and waits again.
            with contextlib.suppress(*LOST):
                blobs.conn = renewed(blobs.conn, self.database)

    def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        started = time.monotonic()
        # Stop early at half the poll interval: the member must poll again before eviction.
        deadline = started + self.settings.kafka_max_poll_interval_ms / 2000
        parts = {tp: recs for tp, recs in batch.items() if recs}
        self.status.processing_seconds = []
        self.status.arrivals_ms = []
        starts = [
            Start(tp.topic, tp.partition, r[0].offset, r[-1].offset) for tp, r in parts.items()
        ]
        standings = self.attempts.begin(starts)
        faults.point(self.settings, self.fault_after_begin)
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, records in parts.items():
            standing = standings[(tp.topic, tp.partition)]
            next_offset = self._partition(tp, records, standing, deadline)
            offsets[tp] = OffsetAndMetadata(next_offset, "", -1)
            if next_offset <= records[-1].offset:
                # Stopped early (pause or deadline): the rest must come again, not be skipped.
                self.consumer.seek(tp, next_offset)
        self._commit(offsets)
        self.status.batches += 1
        if self.on_batch is not None:
            self.on_batch(self.status)

    def _partition(
        self, tp: TopicPartition, records: list[Any], standing: Standing, deadline: float
    ) -> int:
        """Handle one partition's records; returns the offset of the first record not handled.

        Whole batch in the happy path; one record at a time (each committed on its own) while
        the attempt counter says these offsets were in flight when a process died.
        """
        i = 0
        while i < len(records):
            record = records[i]
            step = standing.step(record.offset, self._crash_limit)
            if step == "batch":
                return self._batch(records[i:], standing.attempts, deadline)
            if step == "crash_loop":
                log.error(
                    "%s/%d@%d killed this stage %d times: dead-lettering it unparsed",
                    tp.topic, tp.partition, record.offset, standing.attempts - 1,
                )
                self._dead_letter(
                    Source.of(record), CRASH_LOOP,
                    f"the process died {standing.attempts - 1} times while this record was in "
                    f"flight (max_attempts={self.settings.max_attempts}); sent unparsed",
                    standing.attempts - 1,
                )
            elif not self._handle(record, standing.attempts):
                return record.offset
            # Suspect records are committed one by one, so the next crash pins the culprit.
            self._commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
            i += 1
            if i < len(records):
                nxt = records[i].offset
                last = nxt if nxt <= standing.suspect_end else records[-1].offset
                key = (tp.topic, tp.partition)
                standing = self.attempts.begin([Start(tp.topic, tp.partition, nxt, last)])[key]
        return records[-1].offset + 1

    def _batch(self, records: list[Any], attempts: int, deadline: float) -> int:
        """The happy path: slices of records through the executor at once (a worker pool runs
        them in parallel), verdicts applied in offset order. Returns the first offset not done."""
        for start in range(0, len(records), SLICE):
            if time.monotonic() > deadline:
                log.warning("batch over half the poll interval: committing early")
                return records[start].offset
            part = records[start:start + SLICE]
            began = time.monotonic()
            sources = [Source.of(r) for r in part]
            verdicts = self.executor.run_batch(
                [Context(self.spec.name, source, 1) for source in sources], deadline
            )
            each = (time.monotonic() - began) / len(part)
            for record, source, verdict in zip(part, sources, verdicts, strict=True):
                if verdict is None:
                    log.warning("batch over half the poll interval: committing early")
                    return record.offset
                if verdict.kind == "retry":
                    verdict = self._run_with_retries(source, attempts, verdict)
                    if verdict is None:
                        return record.offset  # stopping: the next owner tries it again
                if not self._apply(record, source, verdict, attempts, each):
                    return record.offset  # paused at this record
        return records[-1].offset + 1

    def _handle(self, record: Any, attempts: int) -> bool:
        """One record through the handler; False when the partition must stop before it
        (paused, or the process is stopping while the record is being retried)."""
        source = Source.of(record)
        began = time.monotonic()
        verdict = self._run_with_retries(source, attempts)
        if verdict is None:
            return False
        return self._apply(record, source, verdict, attempts, time.monotonic() - began)

    def _apply(self, record: Any, source: Source, verdict: Verdict, attempts: int,
               seconds: float) -> bool:
        """Act on a record's verdict; False when the partition must pause before it."""
        self.status.records_in += 1
        self.status.processing_seconds.append(seconds)
        arrived = arrived_ms(source.headers, source.timestamp)
        self.status.arrivals_ms.append(arrived)
        if verdict.kind == "pause":
            tp = TopicPartition(record.topic, record.partition)
            self.status.paused[(record.topic, record.partition)] = verdict.reason
            log.error(
                "PAUSED partition %s/%d at offset %d: %s", record.topic, record.partition,
                record.offset, verdict.reason,
            )
            self.consumer.pause(tp)
            self.attempts.release(record.topic, record.partition, record.offset)
            return False
        for trace in verdict.traces:
            self.tracer.emit(
                trace.key, trace.event, trace.detail, source=source,
                message_id=trace.message_id, dedupe_key=trace.dedupe_key,
                raw_identity=trace.raw_identity,
            )
        if verdict.kind == "ok":
            # Arrival time travels downstream, so every stage can measure end-to-end latency.
            headers = [(ARRIVED_HEADER, str(arrived).encode())]
            for out in verdict.outputs:
                self.producer.send(self.settings.topic(out.topic), key=out.key, value=out.value,
                                   headers=headers)
            self.status.records_out += len(verdict.outputs)
        else:  # dead
            self._dead_letter(source, verdict.reason_code, verdict.reason, attempts)
        return True

    def _run_with_retries(
        self, source: Source, attempts: int, first: Verdict | None = None
    ) -> Verdict | None:
        """The record's verdict, retrying TransientErrors with backoff until the deadline;
        ``first``: the verdict of a first try already made (in a batch). None when SIGTERM
        came while retrying: the record is left uncommitted for whoever takes the partition,
        so a stop never waits out ``stage_retry_deadline_ms`` (longer than a usual grace
        period)."""
        give_up = time.monotonic() + self.settings.stage_retry_deadline_ms / 1000
        backoff = self.settings.stage_retry_backoff_ms / 1000
        tries = 1
        while True:
            verdict = first or self.executor.run(Context(self.spec.name, source, tries))
            first = None
            if verdict.kind != "retry":
                return verdict
            self.status.retried += 1
            if time.monotonic() + backoff > give_up:
                return Verdict(
                    "dead", reason_code=RETRY_EXHAUSTED,
                    reason=f"still failing after {tries} tries over "
                    f"{self.settings.stage_retry_deadline_ms} ms: {verdict.reason}",
                )
            log.warning("transient failure on %s (try %d): %s; retrying in %.1f s",
                        source.coordinates(), tries, verdict.reason, backoff)
            if not self._sleep_unless_stopping(backoff):
                log.info("stopping: %s is left for the next owner", source.coordinates())
                return None
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            tries += 1

    def _sleep_unless_stopping(self, seconds: float) -> bool:
        """Sleep (heartbeats go on in their thread); False as soon as a stop is asked for."""
        until = time.monotonic() + seconds
        while not self.status.stopping:
            left = until - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.2))
        return False

    def _dead_letter(self, source: Source, code: str, reason: str, attempts: int) -> None:
        self._dead_futures.append(
            self.dead.send(self.spec.name, code, reason, source, max(attempts, 1))
        )
        self.tracer.emit(
            source.key_text, "dead_lettered", {"reason_code": code, "reason": reason[:1000]},
            source=source,
        )
        self.status.dead_lettered += 1

    # --- the commit: the one place that decides delivery semantics ----------------------------
    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        timeout = self.settings.kafka_request_timeout_ms / 1000
        # A dead letter must be acknowledged (acks=all) before the offset past it is committed.
        for future in self._dead_futures:
            future.get(timeout=timeout)
        self._dead_futures.clear()
        self.producer.flush(timeout=timeout)
        faults.point(self.settings, self.fault_after_produce)
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced under us (evicted): the new owner redelivers; not fatal.
            log.warning("offset commit refused (%s): the batch will be redelivered", exc)
