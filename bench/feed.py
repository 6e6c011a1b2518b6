"""bench/feed: what the change feed costs persist, and how fast one relay publishes.

    .venv/bin/python bench/feed.py [N] [ROUNDS] [--before MIGRATION ...]

Persist's side: N plans applied in batches of 500 into a fresh scratch schema, with the outbox
triggers on and off, alternated ROUNDS times (a shared machine drifts; alternating spreads the
drift over both, and every other round runs the arms in reverse order) — the medians of plans/s,
of CPU per plan (persist and its PostgreSQL backend) and the outbox rows per plan.
``--before 72`` adds a third arm: the outbox as it was before that migration (the schema
migrated without it), to measure what a migration changed. The relay's side: the outbox of the
last run with the current triggers published by one relay to a scratch topic on the local
broker (acks=all), records/s. Schemas and topic are dropped after.
"""

from __future__ import annotations

import argparse
import os
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


def outbox_rows(base, schema: str) -> int:  # type: ignore[no-untyped-def]
    with connect(base, schema=schema) as conn:
        return conn.execute("SELECT count(*) FROM record_outbox").fetchone()[0]  # type: ignore[index]


def main(n: int = 3_000, rounds: int = 3, before: tuple[int, ...] = ()) -> None:
    base = settings_module.load()
    codec = Codec.from_settings(base)
    items = build_items(codec, n)
    # arm label -> (outbox triggers on, migrations left out)
    arms: dict[str, tuple[bool, tuple[int, ...]]] = {"without the outbox": (False, ())}
    if before:
        arms["with the outbox before " + ", ".join(f"{m:04d}" for m in before)] = (True, before)
    arms["with the outbox"] = (True, ())
    results: dict[str, list[PersistRun]] = {label: [] for label in arms}
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    try:
        for i in range(rounds):
            for label in list(arms)[::1 if i % 2 == 0 else -1]:
                outbox, without = arms[label]
                run = persist_run(base, codec, items, outbox=outbox, without=without,
                                  prefix="bench_feed_")
                results[label].append(run)
                print(f"  {label}: {run.client_ms_per_plan:.3f} ms persist + "
                      f"{run.server_ms_per_plan:.3f} ms PostgreSQL CPU per plan, "
                      f"{run.plans_per_s:,.0f} plans/s", flush=True)
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
        for label, runs in results.items():
            print(f"persist {label}: "
                  f"{statistics.median(r.plans_per_s for r in runs):,.0f} plans/s, CPU per plan "
                  f"{statistics.median(r.client_ms_per_plan for r in runs):.2f} ms persist + "
                  f"{statistics.median(r.server_ms_per_plan for r in runs):.2f} ms PostgreSQL, "
                  f"{outbox_rows(base, runs[-1].schema) / n:.2f} outbox rows per plan "
                  f"(medians of {rounds} runs of {n} plans, batches of {BATCH})")
        rows, published, rate = relay_run(base, codec, results["with the outbox"][-1].schema)
        print(f"relay: {rows} outbox rows -> {published} records published at "
              f"{rate:,.0f} records/s (one relay, acks=all)")
    finally:
        drop_schemas(base, [r.schema for runs in results.values() for r in runs])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="What the change feed costs persist.")
    parser.add_argument("n", nargs="?", type=int, default=3_000, help="plans per run")
    parser.add_argument("rounds", nargs="?", type=int, default=3, help="runs of each arm")
    parser.add_argument("--before", type=int, nargs="+", default=[], metavar="MIGRATION",
                        help="add an arm migrated without these migrations (e.g. 72)")
    args = parser.parse_args()
    main(args.n, args.rounds, tuple(args.before))
