"""Two ``mailroom run persist`` processes share the partitions: both do work, and replies of
one thread landing in different partitions (so in different processes, at the same time) never
deadlock and never lose — or double — an update of their thread's case.

Real broker, real PostgreSQL, the real entry point. Each thread is a parent (a known customer's
mail to the support queue: a case) and replies spread over every partition; half the cases are
resolved by a "user" before the replies come, so the replies race to reopen them. Some replies
also reference the next thread, so the two processes' lock sets overlap.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator

import psycopg
import pytest
from kafka import TopicPartition
from persistbuild import WHEN, email, make_plan
from pipeline_testing import own_topics, produce, start_stage

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.records.action import Plan
from mailroom.settings import Settings

pytestmark = pytest.mark.integration
PARTITIONS = 4
THREADS = 6
REPLIES = 12
FIELDS = ("topic_prefix", "database_url", "kafka_session_timeout_ms",
          "kafka_heartbeat_interval_ms", "stage_max_poll_records", "topic_partitions")


@pytest.fixture
def two_settings(persist_settings: Settings) -> Iterator[Settings]:
    settings = persist_settings.replace(
        topic_partitions=PARTITIONS, kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=1000, stage_max_poll_records=4,
    )
    with own_topics(settings):
        yield settings


def run_persist(settings: Settings) -> subprocess.Popen[bytes]:
    return start_stage(settings, "persist", FIELDS, stderr=subprocess.PIPE,
                       MAILROOM_FAULT_POINTS="")


def send(settings: Settings, codec: Codec, plans: list[Plan]) -> None:
    produce(settings, settings.topic("actions"),
            [(p.dedupe_key.encode(), codec.encode_record(p)) for p in plans])


def claims(db: psycopg.Connection, settings: Settings) -> list[tuple[int, int, int | None]]:
    """(partition, fence token, next offset) of the actions topic's claimed partitions."""
    rows = db.execute(
        "SELECT partition, generation, next_offset FROM persist_offsets "
        "WHERE group_id = %s AND topic = %s ORDER BY partition",
        (f"{settings.topic_prefix}.persist", settings.topic("actions")),
    ).fetchall()
    db.commit()
    return [(r[0], r[1], r[2]) for r in rows]


def wait(what: str, check: object, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.3)


def caught_up(db: psycopg.Connection, settings: Settings) -> bool:
    consumer = kafka.make_consumer(settings, "unused")
    try:
        tps = [TopicPartition(settings.topic("actions"), p) for p in range(PARTITIONS)]
        ends = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()
    stored = {p: off or 0 for p, _, off in claims(db, settings)}
    return all(stored.get(p, 0) >= end for p, end in ends.items())


def thread_plans(codec: Codec) -> tuple[list[Plan], list[Plan]]:
    parents = [make_plan(codec, email(message_id=f"p{t}@customer.example",
                                      subject=f"Thread {t}")) for t in range(THREADS)]
    replies = []
    for t in range(THREADS):
        for i in range(REPLIES):
            refs = (f"p{t}@customer.example",)
            if i % 3 == 0:  # also names the next thread: overlapping lock sets
                refs += (f"p{(t + 1) % THREADS}@customer.example",)
            replies.append(make_plan(codec, email(
                message_id=f"r{t}-{i}@customer.example", subject=f"Re: Thread {t}",
                in_reply_to=f"p{t}@customer.example", references=refs, minutes=i + 1)))
    return parents, replies


def test_two_processes_share_partitions_without_deadlock_or_lost_update(
    two_settings: Settings, db: psycopg.Connection, codec: Codec
) -> None:
    settings = two_settings
    parents, replies = thread_plans(codec)
    first, second = run_persist(settings), None
    try:
        wait("the first process claims", lambda: len(claims(db, settings)) == PARTITIONS)
        second = run_persist(settings)
        # Both members hold partitions: the claims carry two fence tokens (one per process).
        wait("both processes claim", lambda: len({g for _, g, _ in claims(db, settings)}) == 2)
        send(settings, codec, parents)
        wait("parents persisted", lambda: caught_up(db, settings))
        resolved = [f"case|p{t}@customer.example" for t in range(0, THREADS, 2)]
        db.execute("UPDATE cases SET status = 'resolved', resolved_at = %s "
                   "WHERE case_key = ANY(%s)", (WHEN, resolved))
        db.commit()
        send(settings, codec, replies)
        wait("replies persisted", lambda: caught_up(db, settings))
        # Read while both run: at the stop, the one that leaves last may claim everything anew.
        now = claims(db, settings)
        tokens = {g for _, g, _ in now}
        # Both did work: the offsets of each process's partitions moved (written under its token).
        moved = {g for _, g, off in now if off}
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
        errs = [p.communicate(timeout=60)[1].decode() for p in (first, second) if p]
    assert [p.returncode for p in (first, second) if p] == [0, 0], "\n".join(errs)[-4000:]
    assert len(tokens) == 2, "a rebalance moved the partitions to one process"
    assert moved == tokens
    assert not any("40P01" in e or "deadlock" in e.lower() for e in errs), errs

    cases = db.execute("SELECT case_key, id, status, reopened_count, provisional, "
                       "deleted_at IS NULL FROM cases ORDER BY case_key").fetchall()
    assert [c[0] for c in cases] == sorted(f"case|p{t}@customer.example" for t in range(THREADS))
    by_key = {c[0]: c for c in cases}
    for t in range(THREADS):
        key, case_id, status, reopened, provisional, alive = by_key[f"case|p{t}@customer.example"]
        assert (status, provisional, alive) == ("active", False, True), by_key[key]
        # resolved ones reopened exactly once (not zero: lost; not twice: doubled)
        assert reopened == (1 if key in resolved else 0), by_key[key]
        regarding = db.execute(
            "SELECT dedupe_key, regarding FROM email_activities WHERE dedupe_key LIKE %s "
            "OR dedupe_key = %s", (f"r{t}-%", f"p{t}@customer.example")).fetchall()
        assert len(regarding) == REPLIES + 1
        assert {r[1] for r in regarding} == {f"case:{case_id}"}, regarding
    assert db.execute("SELECT count(*) FROM persist_pending_plans").fetchone() == (0,)
    assert not dead_letters(settings)


def dead_letters(settings: Settings) -> int:
    consumer = kafka.make_consumer(settings, "unused")
    try:
        tps = [TopicPartition(settings.topic("dlq"), p) for p in range(PARTITIONS)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()
