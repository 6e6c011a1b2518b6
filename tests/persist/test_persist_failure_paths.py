"""Persist on the stage runner gets every failure path the other stages have, on the real broker
and database: dead letters carry the attempt counter's real count, a plan that keeps killing the
process is dead-lettered ``crash_loop``, and a transaction PostgreSQL refuses transiently is
retried on the shared schedule (``stage_retry_*``), then dead-lettered ``retry_exhausted``."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator

import psycopg
import pytest
from persistbuild import email, make_plan
from pipeline_testing import own_topics, produce, read_all, start_stage, wait_for

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.records import DeadLetter
from mailroom.records.action import Plan
from mailroom.settings import Settings
from persist.offsets import stored_offsets
from persist.stage import PersistStage

pytestmark = pytest.mark.integration
TOPICS = {"actions": 1, "trace": 1, "dlq": 1}
FIELDS = ("topic_prefix", "database_url", "kafka_session_timeout_ms",
          "kafka_heartbeat_interval_ms", "max_attempts")
APPLIED = "persist:after_apply_before_commit"


@pytest.fixture
def stage_settings(persist_settings: Settings) -> Iterator[Settings]:
    settings = persist_settings.replace(
        kafka_session_timeout_ms=6000, kafka_heartbeat_interval_ms=2000, max_attempts=2,
        stage_retry_backoff_ms=50, stage_retry_deadline_ms=1500,
    )
    with own_topics(settings, TOPICS):
        yield settings


def plan_of(codec: Codec, n: int, **fields: str) -> Plan:
    return make_plan(codec, email(message_id=f"p{n}@customer.example", **fields))


def send(settings: Settings, codec: Codec, *plans: Plan) -> None:
    produce(settings, settings.topic("actions"),
            [(p.dedupe_key.encode(), codec.encode_record(p)) for p in plans])


def letters(settings: Settings, codec: Codec) -> list[DeadLetter]:
    return [codec.decode_record(r.value, DeadLetter) for r in read_all(settings, "dlq")]


def stored(db: psycopg.Connection, settings: Settings) -> int | None:
    offsets = stored_offsets(db, f"{settings.topic_prefix}.persist")
    db.commit()
    return offsets.get((settings.topic("actions"), 0))


def activities(db: psycopg.Connection) -> list[str]:
    rows = db.execute("SELECT dedupe_key FROM email_activities ORDER BY dedupe_key").fetchall()
    db.commit()
    return [r[0] for r in rows]


def run_persist(settings: Settings, fault: str = "") -> subprocess.Popen[bytes]:
    return start_stage(settings, "persist", FIELDS, stderr=subprocess.PIPE,
                       MAILROOM_FAULT_POINTS=fault)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]


def test_a_dead_letter_after_a_crash_says_it_was_the_second_attempt(
    stage_settings: Settings, db: psycopg.Connection, codec: Codec,
) -> None:
    s = stage_settings
    send(s, codec, plan_of(codec, 1, body="NUL \x00"))  # refused by PostgreSQL
    crashed = run_persist(s, APPLIED)  # killed with the dead letter acknowledged, not committed
    _, err = crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL, err.decode()[-3000:]
    again = run_persist(s)
    try:
        wait_for(lambda: stored(db, s) == 1, timeout=90)
    finally:
        stop(again)
    got = [(d.reason_code, d.attempts, d.stage) for d in letters(s, codec)]
    assert got == [("refused_by_database", 1, "persist"), ("refused_by_database", 2, "persist")]


def test_a_plan_that_keeps_killing_persist_is_dead_lettered_crash_loop(
    stage_settings: Settings, db: psycopg.Connection, codec: Codec,
) -> None:
    # Every process dies once it has applied a plan (the fault point, armed in each): as a
    # plan that brings persist down would. max_attempts=2: a death in its batch, a death alone,
    # then it is dead-lettered unparsed and persist goes on.
    s = stage_settings
    killer = plan_of(codec, 1)
    send(s, codec, killer)
    exits: list[int] = []
    while True:
        proc = run_persist(s, APPLIED)
        wait_for(lambda p=proc: p.poll() is not None or letters(s, codec), timeout=120)
        if proc.poll() is None:
            break  # past the killer: still running, with its dead letter sent
        exits.append(proc.returncode)
        assert len(exits) <= 3, "persist never got past the plan"
    try:
        wait_for(lambda: stored(db, s) == 1, timeout=60)
    finally:
        stop(proc)
    assert exits == [-signal.SIGKILL, -signal.SIGKILL]
    [letter] = letters(s, codec)
    assert (letter.reason_code, letter.attempts, letter.source_offset) == ("crash_loop", 2, 0)
    assert letter.payload == codec.encode_record(killer)  # unparsed, as it was
    assert activities(db) == []
    send(s, codec, plan_of(codec, 2))  # and the next plan goes in as usual
    proc = run_persist(s)
    try:
        wait_for(lambda: stored(db, s) == 2, timeout=90)
    finally:
        stop(proc)
    assert activities(db) == ["p2@customer.example"]


def refuse_transiently(db: psycopg.Connection, condition: str) -> None:
    """A trigger that makes PostgreSQL answer an activity insert with a serialization failure
    (SQLSTATE 40001, as under concurrent writers) while ``condition`` holds."""
    db.execute("CREATE SEQUENCE serialization_failures")
    db.execute(f"""
        CREATE FUNCTION refuse_transiently() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF {condition} THEN
                RAISE EXCEPTION 'could not serialize access (test)'
                    USING ERRCODE = 'serialization_failure';
            END IF;
            RETURN NEW;
        END $$""")
    db.execute("CREATE TRIGGER refuse_transiently BEFORE INSERT ON email_activities "
               "FOR EACH ROW EXECUTE FUNCTION refuse_transiently()")
    db.commit()


class Running:
    """Persist in this process (its status readable), stopped at the end."""

    def __init__(self, settings: Settings, codec: Codec) -> None:
        self.conn = connect(settings)
        self.producer = kafka.make_producer(settings)
        self.stage = PersistStage(
            settings, consumer=kafka.make_consumer(settings, f"{settings.topic_prefix}.persist"),
            producer=self.producer, conn=self.conn, codec=codec)
        self.thread = threading.Thread(target=self.stage.run)
        self.thread.start()

    def stop(self) -> None:
        self.stage.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        self.producer.close()
        self.conn.close()


def test_a_transient_refusal_is_retried_on_the_shared_schedule(
    stage_settings: Settings, db: psycopg.Connection, codec: Codec,
) -> None:
    s = stage_settings.replace(stage_retry_deadline_ms=60_000)
    refuse_transiently(db, "nextval('serialization_failures') <= 2")  # twice, then never
    send(s, codec, plan_of(codec, 1), plan_of(codec, 2))
    running = Running(s, codec)
    try:
        wait_for(lambda: stored(db, s) == 2, timeout=90)
    finally:
        running.stop()
    assert running.stage.status.retried == 2  # the batch rolled back and tried again, twice
    assert activities(db) == ["p1@customer.example", "p2@customer.example"]
    assert letters(s, codec) == []


def test_a_plan_refused_transiently_past_the_deadline_is_dead_lettered_alone(
    stage_settings: Settings, db: psycopg.Connection, codec: Codec,
) -> None:
    refuse_transiently(db, "NEW.subject = 'always refused'")
    s = stage_settings
    send(s, codec, plan_of(codec, 1), plan_of(codec, 2, subject="always refused"),
         plan_of(codec, 3))
    running = Running(s, codec)
    try:
        wait_for(lambda: stored(db, s) == 3, timeout=90)
    finally:
        running.stop()
    # The batch failed until stage_retry_deadline_ms, then went one plan at a time: the others
    # went in, the refused one was retried alone and dead-lettered with the counter's count.
    assert activities(db) == ["p1@customer.example", "p3@customer.example"]
    [letter] = letters(s, codec)
    assert (letter.reason_code, letter.source_offset, letter.attempts) == (
        "retry_exhausted", 1, 1)
    assert "40001" in letter.reason and "tries over 1500 ms" in letter.reason
