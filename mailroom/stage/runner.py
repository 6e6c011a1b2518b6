"""The stage runner: the one consume → handle → produce → commit loop every stream stage uses,
persist included.

Units
-----
Per ``poll()`` batch the durable attempt counter records the ranges about to be processed (one
statement, :mod:`mailroom.attempts`); records it suspects (in flight when a process died) go
one at a time, each its own *unit*; the rest of every partition is one unit. A unit: in the
commit strategy's transaction (:mod:`mailroom.stage.commit`) the handler over its records (in
budget, :mod:`mailroom.stage.budget`), their outputs, trace events and dead letters sent
(acks=all) and acknowledged (:mod:`mailroom.stage.outbox`), the strategy's ``store``; then its
``commit``. For a whole batch handled by a pool of workers with offsets in Kafka, the
acknowledgement and the commit are taken behind the next batch's work
(:mod:`mailroom.stage.behind`: the children do not wait for the flush and the commit).
:class:`~mailroom.stage.commit.KafkaCommit` (unwrap, route) is at least once: a
crash before the commit redelivers, outputs may be written twice but never lost, the next
stages dedupe by natural keys. Persist stores its offsets in its PostgreSQL transaction: its
effects are exactly once (``persist/offsets.py``).

Failure paths (named, never silent)
-----------------------------------
- not readable Avro → dead letter ``undecodable``; unknown schema fingerprint → the partition is
  paused at that record (error log, status ``paused``), nothing past it is committed;
- handler Rejection / PermanentError → dead letter; TransientError → retry with backoff until
  ``stage_retry_deadline_ms`` (:mod:`mailroom.stage.retry`), then ``retry_exhausted``; any other
  exception → ``crash`` with a traceback summary; over budget → ``timeout``; killed the process
  repeatedly → ``crash_loop``. Every dead letter carries the attempt count of the counter and
  gets a ``dead_lettered`` trace event keyed by the source key.
- a unit whose transaction fails transiently (persist: deadlock, serialization failure) is
  rolled back and retried whole on the same schedule; past the deadline its records go one at
  a time, and one that still fails alone is dead-lettered ``retry_exhausted``;
- fenced (another process owns the partitions now): the unit is rolled back, its records left.

Liveness: a batch stops early (commits what is done, seeks back for the rest) when half of
``kafka_max_poll_interval_ms`` has passed, so a slow batch never gets the member evicted.

PostgreSQL away, the broker failing the batch, or the mailbox directory not readable for a stage
that decides with it (:class:`~mailroom.stage.loop.Dependencies`; the directory is read here,
before every batch, and its changes handed to the handler's processes:
:mod:`mailroom.stage.mailboxcopy`): the batch is redone — its starts released (they are no
deaths), the status ``degraded``, a bounded backoff (:mod:`mailroom.db.outage`), then the
strategy seeks its partitions back; it never exits for it. SIGTERM/SIGINT: the batch in hand
is finished and committed, the consumer closed (leaving the group, so its partitions move at
once) and ``run`` returns 0.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from kafka import TopicPartition
from kafka.errors import KafkaError

from mailroom import faults
from mailroom.attempts import AttemptLog, Standing, Start
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.db.outage import LOST, Outage, renewed
from mailroom.deadletters import DeadLetterWriter
from mailroom.errors import Fenced, TransientError
from mailroom.groupwatch import Watchdog
from mailroom.metrics import arrived_ms
from mailroom.settings import Settings
from mailroom.stage.behind import Behind, FinishOnRevoke
from mailroom.stage.budget import Executor
from mailroom.stage.commit import Commit, KafkaCommit
from mailroom.stage.execute import BatchSpec, StageSpec
from mailroom.stage.loop import Dependencies, poll_until_stopped, stop_signals
from mailroom.stage.mailboxcopy import MailboxFeed, MailboxSender
from mailroom.stage.outbox import Outbox
from mailroom.stage.retry import Retries, verdict_with_retries
from mailroom.stage.status import StageStatus
from mailroom.stage.types import CRASH_LOOP, RETRY_EXHAUSTED, Context, Source, Verdict

log = logging.getLogger(__name__)

NO_CRASH_LIMIT = 2**31  # suspect records still go one by one, never dead-lettered for it
#: Records handed to a per-record executor at once: enough to keep a pool of workers busy; the
#: liveness deadline is checked between slices.
SLICE = 128

Offsets = dict[TopicPartition, int]
#: A unit's work: handles records, returns the offsets to commit and whether the handler ran.
Work = Callable[[], tuple[Offsets, bool]]


class _Exhausted(Exception):  # noqa: N818 - control flow inside the runner only
    """A unit's retries ran out; ``args[0]``: the dead letter's reason."""


def fault_names(stage: str) -> tuple[str, str]:
    """The stage's fault points (registered when a runner is made)."""
    return f"{stage}:after_begin", f"{stage}:after_produce"


class StageRunner:
    def __init__(
        self,
        spec: StageSpec | BatchSpec,
        settings: Settings,
        *,
        consumer: Any,
        producer: Any,
        codec: Codec,
        attempts: AttemptLog,
        executor: Executor,
        commit: Commit | None = None,
        blobs: Any = None,
        status: StageStatus | None = None,
        on_batch: Callable[[StageStatus], None] | None = None,
        database: Callable[[], psycopg.Connection] | None = None,
        mailboxes: MailboxFeed | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.attempts = attempts
        self.executor = executor
        # The mailbox directory, read here for the handler's processes (mailboxcopy: before
        # every batch); the executor hands them what changed.
        self.mailboxes = mailboxes
        if mailboxes is not None and not isinstance(executor, MailboxSender):
            raise TypeError(f"{type(executor).__name__} cannot hand its handlers the mailboxes")
        self.commit = commit if commit is not None else KafkaCommit(consumer)
        # Deaths of this process that count against the record in flight. Only a handler that
        # runs in this process can kill it; with worker children the pool counts the deaths a
        # record causes itself, and a runner that dies was killed from outside (a deploy, a node
        # drain, the OOM killer) — repeated, that must not dead-letter healthy mail.
        self._crash_limit = NO_CRASH_LIMIT if executor.isolates_crashes else settings.max_attempts
        self.status = status or StageStatus()
        self.on_batch = on_batch  # hook for metrics; called after every batch
        self.outbox = Outbox(producer, codec, settings, spec.name, blobs, self.status)
        self.main_topic = settings.topic(spec.input_topic)
        self.fault_after_begin, self.fault_after_produce = fault_names(spec.name)
        faults.register(self.fault_after_begin, "attempts recorded, batch not yet handled")
        faults.register(self.fault_after_produce, "outputs flushed, offsets not yet committed")
        self.database = database  # reopens the blob store's connection after an outage
        self.dependencies = Dependencies(self._redo, self.status)
        # A whole batch's acknowledgement and commit taken behind the next batch's work
        # (mailroom.stage.behind): where the effects are records on topics, and no record can
        # kill this process (the attempt counter must see each unit committed otherwise).
        self.behind: Behind | None = None
        self.listener = self.commit.listener
        if isinstance(self.commit, KafkaCommit) and executor.isolates_crashes:
            self.behind = Behind(self.outbox, self.commit.commit, self.commit.commit_later,
                                 lambda: faults.point(self.settings, self.fault_after_produce))
            self.listener = FinishOnRevoke(self.behind, self.listener)
        # Left without partitions while the group has one for it (a join lost, a leader slow to
        # see new partitions): warn, count, join again (mailroom.groupwatch).
        self.watchdog = Watchdog(settings, consumer, [settings.topic(t) for t in spec.topics],
                                 listener=self.listener)
        self._begun: dict[TopicPartition, int] = {}  # first offset of each partition's begin

    @property
    def dead(self) -> DeadLetterWriter:
        return self.outbox.dead

    # --- lifecycle -----------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, commit, leave. Safe to call from a signal handler."""
        self.status.stopping = True

    def run(self) -> int:
        topics = [self.settings.topic(t) for t in self.spec.topics]
        try:
            with stop_signals(self.stop):
                self.consumer.subscribe(topics, listener=self.listener)
                log.info("stage %s consuming %s as group %s", self.spec.name,
                         ", ".join(topics), self.spec.group_id(self.settings))
                poll_until_stopped(
                    self.consumer, self.status, self.settings.stage_max_poll_records,
                    self.process, self.watchdog.check, self.behind, self.catch_up,
                )
                self.catch_up()  # the unit kept, before leaving
        finally:
            self.executor.close()
            if self.mailboxes is not None:
                self.mailboxes.close()
        # Leave the group now (no commit here: every unit is committed when it ends).
        self.consumer.close(autocommit=False)
        self.producer.flush()
        log.info("stage %s stopped cleanly", self.spec.name)
        return 0

    # --- one batch -----------------------------------------------------------------------------
    def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        self.dependencies.run(lambda: self._process(batch), batch)

    def catch_up(self) -> None:
        """Acknowledge and commit the unit kept behind (nothing more came, or leaving)."""
        if self.behind:
            self.dependencies.run(self.behind.finish, {})

    def _redo(self, batch: dict[TopicPartition, list[Any]], outage: Outage,
              exc: Exception) -> None:
        """Redo the batch once the dependency is back: release its starts (an outage is no
        record's death), wait, let the strategy seek back; the next poll brings it again."""
        wait_s = outage.next_wait(exc)  # logs what failed
        self.status.degraded = outage.reason
        self.outbox.discard()  # the batch's dead letters are sent again with it
        starts = {(tp.topic, tp.partition, r[0].offset) for tp, r in batch.items() if r}
        starts |= {(tp.topic, tp.partition, off) for tp, off in self._begun.items()}
        for topic, partition, offset in sorted(starts):
            self.attempts.release(topic, partition, offset)
        back = self._settle_behind(exc)
        time.sleep(wait_s)
        self.commit.rewind(batch, self.status.paused)
        assigned = self.consumer.assignment()
        for tp, offset in back.items():  # after the batch's own: these start earlier
            if tp in assigned and (tp.topic, tp.partition) not in self.status.paused:
                self.consumer.seek(tp, offset)
        blobs = self.dead.blobs
        if self.database is not None and isinstance(blobs, BlobStore):
            # Still away: the next batch meets it and waits again.
            with contextlib.suppress(*LOST):
                blobs.conn = renewed(blobs.conn, self.database)

    def _settle_behind(self, exc: Exception) -> dict[TopicPartition, int]:
        """The unit kept behind, when a batch must be redone: finished if the broker did not
        fail (another dependency did), else given back; returns where its partitions start
        again (empty: nothing to redo)."""
        if not self.behind:
            return {}
        if not isinstance(exc, KafkaError):
            try:
                self.behind.finish()
                return {}
            except KafkaError as failed:
                log.warning("the unit kept behind failed too: %s", failed)
        return self.behind.give_back()

    def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        self._begun = {}
        if not self.commit.ready(batch):
            return  # sent back by the strategy (persist claimed partitions): polled again
        # Stop early at half the poll interval: the member must poll again before eviction.
        deadline = time.monotonic() + self.settings.kafka_max_poll_interval_ms / 2000
        parts = {tp: recs for tp, recs in batch.items() if recs}
        self.status.processing_seconds = []
        self.status.arrivals_ms = []
        standings = self._begin(
            [Start(tp.topic, tp.partition, r[0].offset, r[-1].offset) for tp, r in parts.items()]
        )
        faults.point(self.settings, self.fault_after_begin)
        self._mailboxes_now()
        suspects = {tp for tp, r in parts.items()
                    if standings[(tp.topic, tp.partition)].step(r[0].offset, self._crash_limit)
                    != "batch"}
        if suspects:
            self._suspected(parts, standings, suspects, deadline)
        else:
            self._whole(parts, {tp: standings[(tp.topic, tp.partition)].attempts
                                for tp in parts}, deadline)
        self.status.batches += 1
        if self.on_batch is not None:
            self.on_batch(self.status)

    def _mailboxes_now(self) -> None:
        """The handlers' copy of the mailbox directory made fresh for this batch: every record
        of it was written before the poll returned, so every mailbox record it depends on is in
        a read that starts now. Unreadable, the batch is redone (DirectoryUnavailable)."""
        if self.mailboxes is None:
            return
        changes = self.mailboxes.changes()
        if changes is not None:
            assert isinstance(self.executor, MailboxSender)  # checked when made
            self.executor.send_mailboxes(changes)

    def _begin(self, starts: list[Start]) -> dict[tuple[str, int], Standing]:
        standings = self.attempts.begin(starts)
        for s in starts:
            self._begun[TopicPartition(s.topic, s.partition)] = s.first_offset
        return standings

    def _suspected(self, parts: dict[TopicPartition, list[Any]],
                   standings: dict[tuple[str, int], Standing], suspects: set[TopicPartition],
                   deadline: float) -> None:
        """After a death: the suspect records one at a time, then the rest as one unit. Only the
        record in hand may be blamed for a death meanwhile, so the other partitions' starts are
        taken back now and every partition's rest is begun again (one statement) after."""
        rest = {tp: r for tp, r in parts.items() if tp not in suspects}
        for tp, records in rest.items():
            self.attempts.release(tp.topic, tp.partition, records[0].offset)
        for tp in suspects:
            left = self._careful(tp, parts[tp], standings[(tp.topic, tp.partition)], deadline)
            if left:
                rest[tp] = left
        if rest:
            begun = self._begin([Start(tp.topic, tp.partition, r[0].offset, r[-1].offset)
                                 for tp, r in rest.items()])
            self._whole(rest, {tp: begun[(tp.topic, tp.partition)].attempts for tp in rest},
                        deadline)

    def _careful(self, tp: TopicPartition, records: list[Any], standing: Standing,
                 deadline: float) -> list[Any] | None:
        """The records the counter suspects, each alone in flight and its own unit (so the next
        death pins the culprit). Returns the records past them (not begun); None when the
        partition stops here."""
        for i, record in enumerate(records):
            if time.monotonic() > deadline:
                log.warning("batch over half the poll interval: committing early")
                self._stop_at(tp, record.offset)
                return None
            if standing.step(record.offset, self._crash_limit) == "crash_loop":
                log.error(
                    "%s/%d@%d killed this stage %d times: dead-lettering it unparsed",
                    tp.topic, tp.partition, record.offset, standing.attempts - 1,
                )
                moved = self._dead_letter_unit(
                    tp, record, CRASH_LOOP,
                    f"the process died {standing.attempts - 1} times while this record was in "
                    f"flight (max_attempts={self.settings.max_attempts}); sent unparsed",
                    standing.attempts - 1,
                )
            else:
                moved = self._single(tp, record, standing.attempts)
            if not moved:
                return None
            if i + 1 < len(records) and records[i + 1].offset <= standing.suspect_end:
                nxt = records[i + 1].offset
                standing = self._begin([Start(tp.topic, tp.partition, nxt, nxt)])[
                    (tp.topic, tp.partition)]
            else:
                return records[i + 1:]
        return []

    def _whole(self, parts: dict[TopicPartition, list[Any]], attempts: dict[TopicPartition, int],
               deadline: float) -> None:
        """The happy path: every partition's records as one unit."""
        try:
            self._unit({tp: r[0].offset for tp, r in parts.items()},
                       lambda: self._handle_all(parts, attempts, deadline), behind=True)
            return
        except _Exhausted as exc:
            reason = exc.args[0]
        pending = [(tp, record) for tp, records in parts.items() for record in records]
        if len(pending) == 1:  # alone already: its retries are used up
            tp, record = pending[0]
            self._dead_letter_unit(tp, record, RETRY_EXHAUSTED, reason, attempts[tp])
            return
        log.warning("the batch failed until the retry deadline (%s): one record at a time",
                    reason[:300])
        stopped: set[TopicPartition] = set()
        for tp, record in pending:
            if tp in stopped:
                continue
            if time.monotonic() > deadline:
                stopped.add(tp)
                self._stop_at(tp, record.offset)
            elif not self._single(tp, record, attempts[tp]):
                stopped.add(tp)

    # --- units ---------------------------------------------------------------------------------
    def _unit(self, first: Mapping[TopicPartition, int], work: Work,
              behind: bool = False) -> Offsets | None:
        """``work`` and the commit of the offsets it returns, as one unit of the commit strategy.
        A TransientError out of it rolls it back and it is tried again with backoff; past the
        deadline :class:`_Exhausted` is raised. Returns the committed offsets (``behind``, a
        whole batch, where the runner keeps one: to be committed behind the next unit's work);
        None when it was given up (fenced, or a stop asked for while retrying): its partitions
        are then sought back to ``first`` and their starts released — neither is a death."""
        keeper = self.behind if behind else None
        if keeper is None and self.behind:
            self.behind.finish()  # commits in order: the unit kept first
        retries: Retries | None = None
        while True:
            try:
                with self.commit.transaction():
                    offsets, handled = work()
                    if keeper is None:
                        self.outbox.acknowledge()
                        faults.point(self.settings, self.fault_after_produce)
                    self.commit.store(offsets, handled)
                if keeper is not None:
                    keeper.defer(first, offsets)
                else:
                    self.commit.commit(offsets)
                return offsets
            except Fenced as exc:
                log.warning("%s: the records are left to their new owner", exc)
            except TransientError as exc:
                self.outbox.discard()  # what it sent is sent again with the next try
                retries = retries or Retries(self.settings, self.status)
                reason = str(exc) or type(exc).__name__
                where = ", ".join(f"{tp.topic}/{tp.partition}@{o}" for tp, o in first.items())
                step = retries.after_failure(f"the unit from {where}", reason)
                if step == "again":
                    continue
                if step == "exhausted":
                    raise _Exhausted(retries.exhausted(reason)) from exc
            self.outbox.discard()
            self._give_back(first)
            return None

    def _single(self, tp: TopicPartition, record: Any, attempts: int) -> bool:
        """One record as its own unit; True when its partition moved past it."""
        try:
            done = self._unit({tp: record.offset}, lambda: self._handle_one(tp, record, attempts))
        except _Exhausted as exc:
            return self._dead_letter_unit(tp, record, RETRY_EXHAUSTED, exc.args[0], attempts)
        return done is not None and done[tp] > record.offset

    def _dead_letter_unit(self, tp: TopicPartition, record: Any, code: str, reason: str,
                          attempts: int) -> bool:
        """A unit that only dead-letters ``record`` (unhandled) and commits past it."""
        def work() -> tuple[Offsets, bool]:
            self.outbox.dead_letter(Source.of(record), code, reason, attempts)
            return {tp: record.offset + 1}, False

        try:
            return self._unit({tp: record.offset}, work) is not None
        except _Exhausted:  # only a transiently failing commit can get here
            self._give_back({tp: record.offset})
            return False

    def _handle_one(self, tp: TopicPartition, record: Any, attempts: int) -> tuple[Offsets, bool]:
        source = Source.of(record)
        began = time.monotonic()
        verdict = self._run_with_retries(source, attempts)
        if verdict is None or not self._apply(record, source, verdict, attempts,
                                              time.monotonic() - began):
            self._stop_at(tp, record.offset)  # paused, or stopping while it was retried
            return {tp: record.offset}, record.topic == self.main_topic
        return {tp: record.offset + 1}, record.topic == self.main_topic

    def _handle_all(self, parts: dict[TopicPartition, list[Any]],
                    attempts: dict[TopicPartition, int], deadline: float) -> tuple[Offsets, bool]:
        """Every partition's records through the executor — in slices for a pool, at once for a
        whole-batch executor — verdicts applied in offset order per partition."""
        order = [(tp, r) for tp, records in parts.items() for r in records]
        size = max(len(order), 1) if self.executor.whole_batch else SLICE
        offsets = {tp: records[-1].offset + 1 for tp, records in parts.items()}
        stopped: set[TopicPartition] = set()
        handled = late = False

        def stop(tp: TopicPartition, offset: int) -> None:
            stopped.add(tp)
            offsets[tp] = offset
            self._stop_at(tp, offset)

        for start in range(0, len(order), size):
            part = [(tp, r) for tp, r in order[start:start + size] if tp not in stopped]
            if part and time.monotonic() > deadline:
                for tp, record in order[start:]:
                    if tp not in stopped:
                        stop(tp, record.offset)
                late = True
                break
            if not part:
                continue
            began = time.monotonic()
            sources = [Source.of(r) for _, r in part]
            verdicts = self.executor.run_batch(
                [Context(self.spec.name, source, 1) for source in sources], deadline
            )
            # Handled: records of the main input reached the handler (not only side inputs).
            handled = handled or any(r.topic == self.main_topic for _, r in part)
            each = (time.monotonic() - began) / len(part)
            for (tp, record), source, verdict in zip(part, sources, verdicts, strict=True):
                if tp in stopped:
                    continue
                if verdict is None:
                    late = True
                    stop(tp, record.offset)
                    continue
                if verdict.kind == "retry":
                    verdict = self._run_with_retries(source, attempts[tp], verdict)
                    if verdict is None:
                        stop(tp, record.offset)  # stopping: the next owner tries it again
                        continue
                if not self._apply(record, source, verdict, attempts[tp], each):
                    stop(tp, record.offset)  # paused at this record
        if late:
            log.warning("batch over half the poll interval: committing early")
        return offsets, handled

    # --- records -------------------------------------------------------------------------------
    def _apply(self, record: Any, source: Source, verdict: Verdict, attempts: int,
               seconds: float) -> bool:
        """Act on a record's verdict; False when the partition must pause before it."""
        self.status.records_in += 1
        self.status.processing_seconds.append(seconds)
        arrived = arrived_ms(source.headers, source.timestamp)
        if record.topic == self.main_topic:  # a side input (persist's traces) is no mail
            self.status.arrivals_ms.append(arrived)
        if verdict.kind == "pause":
            self.status.paused[(record.topic, record.partition)] = verdict.reason
            log.error(
                "PAUSED partition %s/%d at offset %d: %s", record.topic, record.partition,
                record.offset, verdict.reason,
            )
            self.consumer.pause(TopicPartition(record.topic, record.partition))
            return False
        self.outbox.send(source, verdict, attempts, arrived)
        return True

    def _run_with_retries(
        self, source: Source, attempts: int, first: Verdict | None = None
    ) -> Verdict | None:
        """The record's verdict, TransientErrors retried; None: stopping meanwhile."""
        return verdict_with_retries(
            lambda tries: self.executor.run(Context(self.spec.name, source, tries)),
            source, first, self.settings, self.status,
        )

    # --- where a partition goes on from --------------------------------------------------------
    def _stop_at(self, tp: TopicPartition, offset: int) -> None:
        """The partition stops before ``offset`` (paused, late, stopping): that record comes
        again. If nothing of the range begun was committed, the start is released — the stop
        was no death."""
        self.consumer.seek(tp, offset)
        if self._begun.get(tp) == offset:
            self.attempts.release(tp.topic, tp.partition, offset)

    def _give_back(self, first: Mapping[TopicPartition, int]) -> None:
        assigned = self.consumer.assignment()
        for tp, offset in first.items():
            if tp in assigned:
                self.consumer.seek(tp, offset)
            self.attempts.release(tp.topic, tp.partition, offset)
