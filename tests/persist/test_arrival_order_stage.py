"""Replies before their originals through the real broker and `mailroom run persist`: the
replies (linked only by a tracking token, a Thread-Index or the subject) are spread over the
actions topic's partitions and fully persisted before their originals are sent at all; when the
originals land, every reply joins its original's thread and case."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator

import psycopg
import pytest
from kafka import TopicPartition
from persistbuild import make_plan, rows
from pipeline_testing import own_topics, produce, start_stage
from test_arrival_order import SMART, smart_emails, thread_index_emails, token_emails

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.records.action import Plan
from mailroom.settings import Settings

pytestmark = pytest.mark.integration
PARTITIONS = 3
FIELDS = ("topic_prefix", "database_url", "kafka_session_timeout_ms",
          "kafka_heartbeat_interval_ms", "stage_max_poll_records", "topic_partitions")


@pytest.fixture
def stage_settings(persist_settings: Settings) -> Iterator[Settings]:
    settings = persist_settings.replace(
        topic_partitions=PARTITIONS, kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=1000, stage_max_poll_records=2,
    )
    with own_topics(settings):
        yield settings


def send(settings: Settings, codec: Codec, plans: list[Plan]) -> None:
    produce(settings, settings.topic("actions"),
            [(p.dedupe_key.encode(), codec.encode_record(p)) for p in plans])


def ends(settings: Settings) -> dict[int, int]:
    """The actions topic's end offset per partition."""
    consumer = kafka.make_consumer(settings, "unused")
    try:
        tps = [TopicPartition(settings.topic("actions"), p) for p in range(PARTITIONS)]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def caught_up(db: psycopg.Connection, settings: Settings) -> bool:
    """Persist's stored offsets (its truth) have reached the end of every partition."""
    stored = dict(db.execute(
        "SELECT partition, next_offset FROM persist_offsets WHERE group_id = %s AND topic = %s",
        (f"{settings.topic_prefix}.persist", settings.topic("actions"))).fetchall())
    db.commit()
    return all((stored.get(p) or 0) >= end for p, end in ends(settings).items())


def wait(what: str, check: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.3)


def threads(db: psycopg.Connection) -> dict[str, tuple[str | None, str]]:
    """dedupe key → (parent's dedupe key, regarding)."""
    found = rows(db, "SELECT a.dedupe_key, p.dedupe_key, a.regarding FROM email_activities a "
                     "LEFT JOIN email_activities p ON p.id = a.parent_id")
    db.commit()
    return {key: (parent, regarding) for key, parent, regarding in found}


def test_replies_persisted_before_their_originals_join_them_when_they_land(
    stage_settings: Settings, db: psycopg.Connection, codec: Codec
) -> None:
    settings = stage_settings
    [(number,)] = rows(db, "INSERT INTO route_tokens (regarding_kind, regarding_id) "
                           "VALUES ('account', 'a-customer') RETURNING number")
    db.commit()
    by_index, by_token = thread_index_emails(), token_emails(f"CRM:{number:07d}")
    by_subject = smart_emails()
    originals = [make_plan(codec, by_index[0]), make_plan(codec, by_token[0]),
                 make_plan(codec, by_subject[0], SMART)]
    replies = ([make_plan(codec, e) for e in by_index[1:] + by_token[1:]]
               + [make_plan(codec, e, SMART) for e in by_subject[1:]])
    persist = start_stage(settings, "persist", FIELDS, stderr=subprocess.PIPE,
                          MAILROOM_FAULT_POINTS="")
    try:
        # Newest first: each reply arrives before everything it refers to.
        send(settings, codec, replies[::-1])
        wait("the replies persisted", lambda: len(threads(db)) == len(replies)
             and caught_up(db, settings))
        assert len([n for n in ends(settings).values() if n]) > 1  # over several partitions
        send(settings, codec, originals)
        wait("the originals persisted",
             lambda: len(threads(db)) == len(replies) + len(originals)
             and caught_up(db, settings))
    finally:
        persist.send_signal(signal.SIGTERM)
        err = persist.communicate(timeout=60)[1].decode()
    assert persist.returncode == 0, err[-4000:]

    got = threads(db)
    for group in (by_index, by_token, by_subject):
        first, *rest = (e.dedupe_key for e in group)
        assert got[first][0] is None, first  # the original is nobody's child
        for key in rest:
            seen = [key]  # follow the parents up to the thread's first email
            while got[seen[-1]][0] is not None:
                seen.append(got[seen[-1]][0])
            assert seen[-1] == first, seen
    # One case per thread the queue's rules open, every email of the thread regarding it.
    cases = dict(rows(db, "SELECT case_key, 'case:' || id FROM cases "
                          "WHERE deleted_at IS NULL"))
    for first, *rest in ([e.dedupe_key for e in g] for g in (by_index, by_subject)):
        case = cases.pop(f"case|{first}")
        assert {got[k][1] for k in (first, *rest)} == {case}
    # The customer's token reply opens the case of its thread (our mail had none), as in order;
    # the provisional cases of the other early replies were withdrawn.
    assert list(cases) == [f"case|{by_token[1].dedupe_key}"]
    assert rows(db, "SELECT dedupe_key FROM persist_pending_plans") == []
