"""bench/feed: what the change feed costs persist, and how fast one relay publishes.

    .venv/bin/python bench/feed.py [N] [ROUNDS]

Persist's side: N plans applied in batches of 500 into a fresh scratch schema, with the outbox
triggers on and off, alternated ROUNDS times (a shared machine drifts; alternating spreads the
drift over both) — the medians of plans/s and of CPU per plan (persist and its PostgreSQL
backend). The relay's side: the outbox of the last run with triggers published by one relay to
a scratch topic on the local broker (acks=all), records/s. Schemas and topic are dropped after.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from pathlib import Path

import psutil

_REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(_REPO)
sys.path.insert(1, str(_REPO / "tests"))
sys.path.insert(2, str(_REPO / "bench"))

from persistbuild import email, make_plan  # noqa: E402
from pipeline_testing import REFERENCE_SQL  # noqa: E402

from mailroom import kafka  # noqa: E402
from mailroom import settings as settings_module  # noqa: E402
from mailroom.codec import Codec  # noqa: E402
from mailroom.db import connect  # noqa: E402
from mailroom.db.migrate import migrate  # noqa: E402
from persist import feed  # noqa: E402
from persist.batch import Item, apply_batch  # noqa: E402

BATCH = 500


def disable_outbox(conn) -> None:  # type: ignore[no-untyped-def]
    """Switch the change feed's outbox triggers off (this schema only)."""
    for table, trigger in conn.execute(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace "
            "AND t.tgname ~ '_feed_(insert|update|delete)$'").fetchall():
        conn.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER "{trigger}"')


def persist_run(base, codec, items, outbox: bool) -> tuple[float, float, float, str]:  # type: ignore[no-untyped-def]
    """(plans/s, client ms per plan, server ms per plan, schema) of one run."""
    schema = "bench_feed_" + uuid.uuid4().hex[:8]
    with connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    with connect(base, schema=schema) as conn:
        migrate(conn)
        conn.execute(REFERENCE_SQL)
        if not outbox:
            disable_outbox(conn)
        conn.commit()
        backend = psutil.Process(conn.info.backend_pid)
        server, client = _cpu(backend), time.process_time()
        start = time.perf_counter()
        for i in range(0, len(items), BATCH):
            with conn.transaction():
                apply_batch(conn, codec, items[i:i + BATCH])
        took = time.perf_counter() - start
        server, client = _cpu(backend) - server, time.process_time() - client
    n = len(items)
    return n / took, client / n * 1000, server / n * 1000, schema


def relay_run(base, codec, schema: str) -> tuple[int, int, float]:  # type: ignore[no-untyped-def]
    """(outbox rows, records published, records/s) of one relay draining ``schema``."""
    settings = base.replace(topic_prefix="bench-feed-" + uuid.uuid4().hex[:8])
    admin = kafka.make_admin(settings)
    from kafka.admin import NewTopic

    admin.create_topics([NewTopic(settings.topic("records"), 6, 1)])
    producer = kafka.make_producer(settings)
    try:
        with connect(base, schema=schema) as conn:
            rows = conn.execute("SELECT count(*) FROM record_outbox").fetchone()[0]  # type: ignore[index]
            relay = feed.Relay(settings, conn, producer, codec)
            assert relay.try_lead()
            start = time.perf_counter()
            while relay.round():
                pass
            took = time.perf_counter() - start
            return rows, relay.published, relay.published / took
    finally:
        producer.close()
        admin.delete_topics([settings.topic("records")])
        admin.close()


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main(n: int = 3_000, rounds: int = 3) -> None:
    base = settings_module.load()
    codec = Codec.from_settings(base)
    plans = [make_plan(codec, email(message_id=f"b{i}@customer.example", subject=f"Issue {i}",
                                    body="x" * 2000)) for i in range(n)]
    items = [Item(p, codec.encode_record(p), i) for i, p in enumerate(plans)]
    results: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    schemas: list[str] = []
    try:
        for _ in range(rounds):
            for outbox in (False, True):
                rate, client, server, schema = persist_run(base, codec, items, outbox)
                schemas.append(schema)
                results[outbox].append((rate, client, server))
        for outbox in (False, True):
            runs = results[outbox]
            print(f"persist {'with' if outbox else 'without':>7} the outbox: "
                  f"{statistics.median(r[0] for r in runs):,.0f} plans/s, CPU per plan "
                  f"{statistics.median(r[1] for r in runs):.2f} ms persist + "
                  f"{statistics.median(r[2] for r in runs):.2f} ms PostgreSQL "
                  f"(medians of {rounds} runs of {n} plans)")
        rows, published, rate = relay_run(base, codec, schemas[-1])
        print(f"relay: {rows} outbox rows -> {published} records published at "
              f"{rate:,.0f} records/s (one relay, acks=all)")
    finally:
        with connect(base, autocommit=True) as admin:
            for schema in schemas:
                admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
