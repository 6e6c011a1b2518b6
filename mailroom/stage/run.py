"""Wire a stream stage to the real clients and run it: what ``mailroom run unwrap`` calls.

A stage's entry point is one line::

    def main(settings: Settings, args: argparse.Namespace) -> int:
        return run_stage(SPEC, settings)

Everything is built here from the one Settings object and passed in explicitly (no globals):
the consumer and producer from :mod:`mailroom.kafka`, the codec, an autocommit PostgreSQL
connection for the attempt counter, the blob store for oversized dead letters, the executor,
and for a stage that decides with the mailbox directory, the directory's one reader.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from mailroom import kafka
from mailroom.attempts import AttemptLog
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.db.outage import connected
from mailroom.mailboxes import MailboxDirectory
from mailroom.metrics import Batch, Health, StageMetrics, consumer_lag, serve
from mailroom.settings import Settings
from mailroom.stage.budget import make_executor
from mailroom.stage.execute import StageSpec
from mailroom.stage.mailboxcopy import MailboxFeed
from mailroom.stage.runner import StageRunner
from mailroom.stage.status import StageStatus

log = logging.getLogger(__name__)


def build_runner(
    spec: StageSpec,
    settings: Settings,
    *,
    schema: str | None = None,
    status: StageStatus | None = None,
) -> StageRunner:
    """A ready runner (clients connected). ``schema``: the database schema (tests use their
    own); ``None`` uses the connection's default search_path."""
    codec = Codec.from_settings(settings)

    def database() -> psycopg.Connection:  # reopens a connection lost in an outage
        return connect(settings, schema=schema, autocommit=True)

    # A process started while PostgreSQL is down (restarted by a supervisor at that moment)
    # waits for it instead of exiting.
    conn = connected(database, f"start of {spec.name}")
    client_id = f"mailroom-{spec.name}"
    consumer = kafka.make_consumer(settings, spec.group_id(settings), client_id=client_id)
    producer = kafka.make_producer(settings, client_id=client_id)
    return StageRunner(
        spec,
        settings,
        consumer=consumer,
        producer=producer,
        codec=codec,
        attempts=AttemptLog(conn, spec.group_id(settings), database),
        executor=make_executor(spec, codec, settings),
        # Its own connection: a dead letter's blob must commit even while nothing else does.
        blobs=BlobStore(connected(database, f"start of {spec.name}")),
        status=status,
        database=database,
        # Read in this process only: the workers get copies and never import a Kafka client.
        mailboxes=MailboxFeed(MailboxDirectory(settings, codec)) if spec.reads_mailboxes else None,
    )


def watch(runner: StageRunner, settings: Settings,
          records_out: Callable[[StageStatus], int] | None = None) -> Any:
    """Metrics and health endpoints for the runner (settings.metrics_port; 0: none).
    ``records_out``: what the stage counts as its output, when it is not records produced
    (persist: plans applied)."""
    if not settings.metrics_port:
        return None
    metrics = StageMetrics(runner.spec.name)
    # mailroom_group_rejoins_total, mailroom_group_unassigned_seconds
    runner.watchdog.export(metrics.registry, runner.spec.name)
    status = runner.status
    stale_s = settings.kafka_max_poll_interval_ms / 1000
    out = records_out or (lambda s: s.records_out)

    def on_batch(s: StageStatus) -> None:
        metrics.batch(Batch(s.records_in, out(s), s.dead_lettered, s.retried,
                            s.processing_seconds, s.arrivals_ms, consumer_lag(runner.consumer),
                            len(s.paused)))

    runner.on_batch = on_batch
    return serve(settings, metrics, Health(
        alive=lambda: not status.stopping and time.monotonic() - status.last_loop < stale_s,
        ready=lambda: status.ready and status.healthy,
    ))


def run_stage(
    spec: StageSpec,
    settings: Settings,
    *,
    schema: str | None = None,
    status: StageStatus | None = None,
) -> int:
    """Run ``spec`` until SIGTERM/SIGINT; returns the process exit code (0 on a clean stop)."""
    runner = build_runner(spec, settings, schema=schema, status=status)
    server = watch(runner, settings)
    try:
        return runner.run()
    finally:
        if server is not None:
            server.shutdown()
        runner.producer.close()
        runner.attempts.conn.close()
        if runner.dead.blobs is not None:
            runner.dead.blobs.conn.close()
