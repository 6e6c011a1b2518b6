"""The persist stage on the real broker and database: plans → rows, exactly once, through
crashes at each fault point (``mailroom run persist`` as a subprocess, killed, restarted)."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator

import psycopg
import pytest
from kafka import TopicPartition
from persistbuild import email, make_plan
from pipeline_testing import own_topics, produce, start_stage

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.settings import Settings
from persist.offsets import stored_offsets
from persist.stage import PersistStage

pytestmark = pytest.mark.integration
TOPICS = {"actions": 3, "trace": 1, "dlq": 1}
FIELDS = ("topic_prefix", "database_url", "kafka_session_timeout_ms",
          "kafka_heartbeat_interval_ms", "stage_max_poll_records")


@pytest.fixture
def stage_settings(persist_settings: Settings) -> Iterator[Settings]:
    settings = persist_settings.replace(
        kafka_session_timeout_ms=6000, kafka_heartbeat_interval_ms=2000,
        stage_max_poll_records=25,
    )
    with own_topics(settings, TOPICS):
        yield settings


def produce_plans(settings: Settings, codec: Codec, n: int, start: int = 0) -> None:
    plans = [make_plan(codec, email(message_id=f"m{i}@customer.example", subject=f"Issue {i}"))
             for i in range(start, start + n)]
    produce(settings, settings.topic("actions"),
            [(p.dedupe_key.encode(), codec.encode_record(p)) for p in plans])


def ends(settings: Settings) -> dict[tuple[str, int], int]:
    consumer = kafka.make_consumer(settings, "unused")
    try:
        tps = [TopicPartition(settings.topic("actions"), p) for p in range(TOPICS["actions"])]
        return {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def caught_up(db: psycopg.Connection, settings: Settings) -> bool:
    stored = stored_offsets(db, f"{settings.topic_prefix}.persist")
    db.commit()
    return all((stored.get(k) or 0) >= v for k, v in ends(settings).items())


def wait_caught_up(db: psycopg.Connection, settings: Settings, timeout: float = 90) -> None:
    import time
    deadline = time.monotonic() + timeout
    while not caught_up(db, settings):
        assert time.monotonic() < deadline, "persist did not catch up"
        time.sleep(0.5)


def counts(db: psycopg.Connection) -> tuple[int, ...]:
    row = db.execute(
        "SELECT (SELECT count(*) FROM email_activities), "
        "(SELECT count(DISTINCT dedupe_key) FROM email_activities), "
        "(SELECT count(*) FROM activity_parties), (SELECT count(*) FROM cases), "
        "(SELECT count(*) FROM queue_items), (SELECT count(*) FROM activity_mailboxes)"
    ).fetchone()
    db.commit()
    assert row is not None
    return tuple(row)


def run_persist(settings: Settings, fault: str = "") -> subprocess.Popen[bytes]:
    return start_stage(settings, "persist", FIELDS, stderr=subprocess.PIPE,
                       MAILROOM_FAULT_POINTS=fault)


def test_plans_on_the_broker_become_rows_and_offsets(
    stage_settings: Settings, db: psycopg.Connection, codec: Codec
) -> None:
    produce_plans(stage_settings, codec, 40)
    bad = make_plan(codec, email(message_id="bad@customer.example", body="NUL \x00"))
    produce(stage_settings, stage_settings.topic("actions"),
            [(b"bad@customer.example", codec.encode_record(bad)), (b"junk", b"not avro")])
    group = f"{stage_settings.topic_prefix}.persist"
    conn = connect(stage_settings)
    consumer = kafka.make_consumer(stage_settings, group)
    prod = kafka.make_producer(stage_settings)
    stage = PersistStage(stage_settings, consumer=consumer, producer=prod, conn=conn, codec=codec)
    thread = threading.Thread(target=stage.run)
    thread.start()
    try:
        wait_caught_up(db, stage_settings)
    finally:
        stage.stop()
        thread.join(timeout=30)
        prod.close()
        conn.close()
    assert counts(db) == (40, 40, 80, 40, 40, 40)
    assert stage.status.dead_lettered == 2
    # the copy in Kafka matches PostgreSQL, so kafka-consumer-groups sees the stage
    admin = kafka.make_admin(stage_settings)
    try:
        got = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    in_kafka = {(tp.topic, tp.partition): om.offset for tp, om in got.items()
                if tp.topic == stage_settings.topic("actions")}
    assert in_kafka == ends(stage_settings)


@pytest.mark.parametrize("fault", [
    "persist:after_apply_before_commit@2", "persist:after_db_commit_before_kafka_commit@2",
])
def test_death_at_each_fault_point_loses_nothing_doubles_nothing(
    stage_settings: Settings, db: psycopg.Connection, codec: Codec, fault: str
) -> None:
    produce_plans(stage_settings, codec, 120)
    crashed = run_persist(stage_settings, fault)
    _, err = crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL, err.decode()[-3000:]
    assert counts(db)[0] < 120  # it died part-way
    again = run_persist(stage_settings)
    try:
        wait_caught_up(db, stage_settings)
    finally:
        again.send_signal(signal.SIGTERM)
        _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err.decode()[-3000:]
    assert counts(db) == (120, 120, 240, 120, 120, 120)
