"""bench/persist: plans applied per second by one persist process, and rows written per second.

    .venv/bin/python bench/persist.py [N] [--without-outbox]

``--without-outbox`` disables the change feed's outbox triggers (migrations 0063, 0072) in the
scratch schema: the difference is what the feed costs persist (``bench/feed.py`` measures both
in one run, interleaved, and the relay; both measure through ``bench/persist_run.py``).

Real PostgreSQL of the local stack (a scratch schema, dropped afterwards), no broker: this is
what the database side of a batch costs, which bounds one persist process. It also compares
the two ways of writing many rows at once — COPY and pipelined executemany — on the party rows.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(_REPO)
sys.path.insert(1, str(_REPO / "tests"))
sys.path.insert(2, str(_REPO / "bench"))

from persist_run import BATCH, build_items, drop_schemas, persist_run  # noqa: E402

from mailroom import settings as settings_module  # noqa: E402
from mailroom.codec import Codec  # noqa: E402
from mailroom.db import connect  # noqa: E402

TABLES = ("email_activities", "activity_parties", "activity_mailboxes", "cases", "queue_items")


def main(n: int = 5_000, outbox: bool = True) -> None:
    base = settings_module.load()
    codec = Codec.from_settings(base)
    items = build_items(codec, n)
    steps = sum(len(item.plan.steps) for item in items)
    run = persist_run(base, codec, items, outbox=outbox)
    try:
        with connect(base, schema=run.schema) as conn:
            rows = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                       for t in TABLES)
            label = "persist" if outbox else "persist without the outbox"
            print(f"{label}: {run.plans_per_s:,.0f} plans/s, "
                  f"{steps / run.seconds:,.0f} actions/s, {rows / run.seconds:,.0f} rows/s "
                  f"({rows} rows, batches of {BATCH}, one process)")
            # CPU per plan holds still on a busy machine, where the rate does not.
            print(f"  CPU per plan: {run.client_ms_per_plan:.2f} ms persist, "
                  f"{run.server_ms_per_plan:.2f} ms its PostgreSQL backend")
            _copy_vs_executemany(conn)
            _trace_events(conn)
    finally:
        drop_schemas(base, [run.schema])


def _copy_vs_executemany(conn, n: int = 50_000) -> None:  # type: ignore[no-untyped-def]
    conn.execute("CREATE TEMP TABLE scratch (a bigint, role text, address text, record text)")
    data = [(i, "to", f"p{i}@example.org", "") for i in range(n)]
    for label, write in (("COPY", _copy), ("executemany (pipelined)", _many)):
        conn.execute("TRUNCATE scratch")
        start = time.perf_counter()
        with conn.transaction():
            write(conn, data)
        print(f"  {label}: {n / (time.perf_counter() - start):,.0f} rows/s")


def _trace_events(conn, n: int = 20_000) -> None:  # type: ignore[no-untyped-def]
    """message_traces as the stage writes them: COPY via staging (persist/traces.py) against
    the row-by-row executemany it replaced, each into an empty table, batches of 500."""
    from datetime import UTC, datetime

    from mailroom.records import TraceEvent
    from mailroom.stage.types import Source
    from persist import traces

    at = datetime(2026, 11, 2, tzinfo=UTC)
    events = [traces.row_of(Source("t.trace", 0, i, b"k", b"", 0), 0,
                            TraceEvent(key=f"m{i}@x", stage="route", event="routed", at=at,
                                       message_id=f"m{i}@x",
                                       detail={"01 filter": "accepted: all mail"}))
              for i in range(n)]

    def many(batch):  # type: ignore[no-untyped-def]
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO message_traces ({traces.COLUMNS}) VALUES "
                f"({', '.join(['%s'] * len(traces.TraceRow._fields))}) ON CONFLICT DO NOTHING",
                batch)

    for label, write in (("COPY (persist/traces.py)", lambda b: traces.store(conn, b)),
                         ("executemany", many)):
        conn.execute("TRUNCATE message_traces")
        conn.commit()
        start = time.perf_counter()
        for i in range(0, n, BATCH):
            with conn.transaction():
                write(events[i:i + BATCH])
        print(f"  message_traces, {label}: {n / (time.perf_counter() - start):,.0f} rows/s")


def _copy(conn, data) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur, cur.copy("COPY scratch FROM STDIN") as copy:
        for row in data:
            copy.write_row(row)


def _many(conn, data) -> None:  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO scratch VALUES (%s, %s, %s, %s)", data)


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if a.isdigit()]
    main(int(numbers[0]) if numbers else 5_000, outbox="--without-outbox" not in sys.argv)
