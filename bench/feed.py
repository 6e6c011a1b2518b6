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

_REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(_REPO)
sys.path.insert(1, str(_REPO / "tests"))
sys.path.insert(2, str(_REPO / "bench"))

from persist_run import BATCH, PersistRun, build_items, drop_schemas, persist_run  # noqa: E402

from mailroom import kafka  # noqa: E402
from mailroom import settings as settings_module  # noqa: E402
from mailroom.codec import Codec  # noqa: E402
from mailroom.db import connect  # noqa: E402
from persist import feed  # noqa: E402


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


def main(n: int = 3_000, rounds: int = 3) -> None:
    base = settings_module.load()
    codec = Codec.from_settings(base)
    items = build_items(codec, n)
    results: dict[bool, list[PersistRun]] = {True: [], False: []}
    try:
        for _ in range(rounds):
            for outbox in (False, True):
                results[outbox].append(persist_run(base, codec, items, outbox=outbox,
                                                   prefix="bench_feed_"))
        for outbox in (False, True):
            runs = results[outbox]
            print(f"persist {'with' if outbox else 'without':>7} the outbox: "
                  f"{statistics.median(r.plans_per_s for r in runs):,.0f} plans/s, CPU per plan "
                  f"{statistics.median(r.client_ms_per_plan for r in runs):.2f} ms persist + "
                  f"{statistics.median(r.server_ms_per_plan for r in runs):.2f} ms PostgreSQL "
                  f"(medians of {rounds} runs of {n} plans, batches of {BATCH})")
        rows, published, rate = relay_run(base, codec, results[True][-1].schema)
        print(f"relay: {rows} outbox rows -> {published} records published at "
              f"{rate:,.0f} records/s (one relay, acks=all)")
    finally:
        drop_schemas(base, [r.schema for runs in results.values() for r in runs])


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
