"""The persist stage: ``mailroom.actions`` and ``mailroom.trace`` → PostgreSQL, exactly once.

Persist runs on the stage runner (:mod:`mailroom.stage.runner`) like every stream stage, with
two pieces of its own:

- :class:`PersistHandler`, its *batch* handler: it decodes the poll batch, applies every plan
  at once (:func:`persist.batch.apply_batch`: thread locks, one savepoint, plan by plan only
  when one fails), stores the trace events (COPY, :mod:`persist.traces`) and answers a verdict
  per record — trace events to emit, or the reason for a dead letter;
- :class:`~persist.offsets.PostgresCommit`, its commit strategy: the unit is one transaction,
  the offsets written in it fenced by the claim token, then copied to Kafka; on assignment the
  consumer seeks to the offsets stored in PostgreSQL.

Per batch, then, in ONE transaction: the plans and trace events; dead letters sent *and
acknowledged* (acks=all) and persist's own trace events flushed; the offsets. Commit. A crash
anywhere before the commit leaves nothing; after it, the restart seeks to PostgreSQL's offsets.

Everything else is the runner's, as for every stage: the durable attempt counter (dead letters
carry the real attempt count; a plan that keeps killing the process is dead-lettered
``crash_loop`` after ``max_attempts`` deaths alone — the plans run in this process), liveness
(the batch stops early at half the poll interval), a deadlock or serialization failure rolling
the batch back and retrying it on the shared schedule (``stage_retry_backoff_ms`` up to
``stage_retry_deadline_ms``, then one plan at a time, ``retry_exhausted``), pausing at an
unknown schema, waiting out PostgreSQL or the broker (the batch redone from the stored
offsets), fencing, SIGTERM finishing the batch, metrics and health endpoints.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import psycopg

from mailroom import kafka
from mailroom.attempts import AttemptLog
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.db.outage import connected
from mailroom.errors import MalformedRecordError, TransientError, UnknownSchemaError
from mailroom.records.action import Plan
from mailroom.settings import Settings
from mailroom.stage.execute import BatchSpec
from mailroom.stage.run import watch
from mailroom.stage.runner import StageRunner
from mailroom.stage.status import StageStatus
from mailroom.stage.types import UNDECODABLE, Context, Source, Trace, Verdict
from persist import privacy, traces
from persist.batch import RETRY_BATCH, Item, Result, apply_batch
from persist.offsets import PostgresCommit
from persist.traces import TraceRow

STAGE = "persist"
SPEC = BatchSpec(name=STAGE, input_topic="actions", also_reads=("trace",))
STORED = Verdict("ok")  # a trace event stored in message_traces: nothing more to send


class PersistHandler:
    """Persist's batch handler (an executor of the runner, :mod:`mailroom.stage.budget`)."""

    # The plans run in this process: one that kills it is the attempt counter's to catch.
    isolates_crashes = False
    whole_batch = True  # the batch's plans are applied together, in the unit's transaction

    def __init__(self, commit: PostgresCommit, codec: Codec, settings: Settings) -> None:
        self.commit = commit  # its ``conn`` is the connection of now (reopened after outages)
        self.codec = codec
        self.trace_topic = settings.topic("trace")
        self.blob_grace = privacy.blob_grace(settings)
        self.plans = 0  # applied (or dead-lettered by the database): the stage's output count
        self.traces = 0

    def run(self, context: Context) -> Verdict:
        [verdict] = self.run_batch([context])
        assert verdict is not None  # one record cannot be cut short
        return verdict

    def run_batch(self, contexts: list[Context],
                  deadline: float | None = None) -> list[Verdict | None]:
        """Apply the records in the open transaction; a verdict each, None for the records of
        a partition after one it must pause at (they are not applied). Raises TransientError
        when PostgreSQL asks for the whole transaction again (deadlock, serialization)."""
        verdicts: list[Verdict | None] = [None] * len(contexts)
        items: list[Item] = []
        item_at: list[int] = []
        events: list[TraceRow] = []
        paused: set[tuple[str, int]] = set()
        for i, context in enumerate(contexts):
            source = context.source
            if (source.topic, source.partition) in paused:
                continue
            try:
                if source.value is None:
                    raise MalformedRecordError("the record has no value (a tombstone)")
                if source.topic == self.trace_topic:
                    events += traces.rows_of(self.codec, source)
                    verdicts[i] = STORED
                else:
                    plan = self.codec.decode_record(source.value, Plan)
                    items.append(Item(plan, source.value, source.timestamp))
                    item_at.append(i)
            except UnknownSchemaError as exc:  # a newer writer: stop the partition before it
                verdicts[i] = Verdict("pause", reason_code="unknown_schema", reason=str(exc))
                paused.add((source.topic, source.partition))
            except MalformedRecordError as exc:
                verdicts[i] = Verdict("dead", reason_code=UNDECODABLE, reason=str(exc))
        conn = self.commit.conn
        try:
            # Erased mail (mailroom erase) is never stored again, whatever a replay brings;
            # claim-check blobs of mail that must not be kept are condemned, and those past
            # their grace swept (persist/privacy.py).
            gone, gone_events = privacy.screen(conn, self.codec, [i.plan for i in items],
                                               events, self.blob_grace)
            for n in sorted(gone, reverse=True):
                verdicts[item_at[n]] = _erased(contexts[item_at[n]].source)
                del items[n], item_at[n]
            if gone_events:
                events = [e for n, e in enumerate(events) if n not in gone_events]
            results = apply_batch(conn, self.codec, items) if items else []
            traces.store(conn, events)  # COPY: the high-volume table (persist/traces.py)
        except psycopg.Error as exc:
            if exc.sqlstate in RETRY_BATCH:
                raise TransientError(f"PostgreSQL {exc.sqlstate}: {exc}".strip()) from exc
            raise  # a lost database is an outage (the runner's Dependencies), else a bug
        for i, result in zip(item_at, results, strict=True):
            verdicts[i] = _verdict(contexts[i].source, result)
        self.plans += len(items)
        self.traces += len(events)
        return verdicts

    def close(self) -> None:
        pass


def _erased(source: Source) -> Verdict:
    key = source.key_text
    return Verdict("ok", traces=(Trace(key, "skipped", {"reason": "erased", "rule": "erasure"},
                                       dedupe_key=key),))


def _verdict(source: Source, result: Result) -> Verdict:
    """A plan's trace events (and those of the parked plans it re-evaluated), or its dead
    letter's reason."""
    if result.failure is not None:
        code, reason = result.failure
        return Verdict("dead", reason_code=code, reason=reason)
    assert result.applied is not None
    key = source.key_text
    events = [Trace(key, result.applied.event, result.applied.detail, dedupe_key=key)]
    events += [
        Trace(plan.dedupe_key, applied.event, applied.detail, message_id=plan.message_id,
              dedupe_key=plan.dedupe_key, from_source=False)
        for plan, applied in result.reevaluated
    ]
    return Verdict("ok", traces=tuple(events))


class PersistStage(StageRunner):
    """Persist as a stage runner: its batch handler and PostgreSQL commit, the rest shared.

    ``conn``: the transaction's connection (not autocommit); ``database(autocommit=...)``
    reopens connections after an outage (None: never). ``attempts``: the counter, on an
    autocommit connection of its own; None opens one from ``settings`` (closed by ``run``).
    """

    def __init__(
        self, settings: Settings, *, consumer: Any, producer: Any, conn: psycopg.Connection,
        codec: Codec, blobs: Any = None, status: StageStatus | None = None,
        database: Callable[..., psycopg.Connection] | None = None,
        attempts: AttemptLog | None = None,
    ) -> None:
        group = SPEC.group_id(settings)
        self.postgres = PostgresCommit(conn, consumer, group, settings, database)
        self.handler = PersistHandler(self.postgres, codec, settings)

        def autocommit() -> psycopg.Connection:
            if database is not None:
                return database(autocommit=True)
            return connect(settings, autocommit=True)

        self._own_attempts = attempts is None
        if attempts is None:
            attempts = AttemptLog(connected(autocommit, "start of persist"), group, autocommit)
        super().__init__(
            SPEC, settings, consumer=consumer, producer=producer, codec=codec,
            attempts=attempts, executor=self.handler, commit=self.postgres, blobs=blobs,
            status=status, database=autocommit if database is not None else None,
        )

    @property
    def conn(self) -> psycopg.Connection:
        return self.postgres.conn

    @property
    def keeper(self) -> Any:
        return self.postgres.keeper

    def run(self) -> int:
        try:
            return super().run()
        finally:
            if self._own_attempts:
                self.attempts.conn.close()


def main(settings: Settings, args: argparse.Namespace | None = None) -> int:
    codec = Codec.from_settings(settings)

    def database(autocommit: bool = False) -> psycopg.Connection:  # also after an outage
        return connect(settings, autocommit=autocommit)

    def autocommit() -> psycopg.Connection:
        return database(autocommit=True)

    # Started while PostgreSQL is down (a supervisor restarting it then): wait, do not exit.
    conn = connected(database, "start of persist")
    client = "mailroom-persist"
    consumer = kafka.make_consumer(settings, SPEC.group_id(settings), client_id=client)
    producer = kafka.make_producer(settings, client_id=client)
    # Autocommit connections of their own: an oversized dead letter's blob, and each begin of
    # the attempt counter, must be committed whatever the batch's transaction does.
    blobs = BlobStore(connected(autocommit, "start of persist"))
    attempts = AttemptLog(connected(autocommit, "start of persist"), SPEC.group_id(settings),
                          autocommit)
    stage = PersistStage(settings, consumer=consumer, producer=producer, conn=conn, codec=codec,
                         blobs=blobs, database=database, attempts=attempts)
    server = watch(stage, settings, records_out=lambda _: stage.handler.plans)
    try:
        return stage.run()
    finally:
        if server is not None:
            server.shutdown()
        producer.close()
        # The connections of now: an outage may have replaced them.
        stage.conn.close()
        blobs.conn.close()
        stage.attempts.conn.close()
