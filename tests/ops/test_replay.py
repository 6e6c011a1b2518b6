"""`mailroom replay` on the real broker and database: dry run vs execute, the reset modes'
clamping, refusal while a member is live, and persist replayed from the earliest offset (its
trace shows every plan applied again, the records end as before)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import psycopg
import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata
from ops_helpers import stage_env, start_stage
from persistbuild import email, make_plan
from pipeline_testing import REFERENCE_SQL, produce, read_all, read_events, stop, wait_for

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.console.ops import replay_command
from mailroom.console.ops.groups import Cluster
from mailroom.console.ops.replay import ReplayRefused, Target, execute, plan
from mailroom.db import connect
from mailroom.records.raw import RawMail
from mailroom.settings import Settings
from persist.stage import PersistStage

pytestmark = pytest.mark.integration


def args(stage: str, **kw: object) -> argparse.Namespace:
    base = dict(stage=stage, to_earliest=False, to_offset=None, shift_by=None,
                to_datetime=None, partition=None, execute=False, follow=False, timeout=0)
    base.update(kw)
    return argparse.Namespace(**base)


def committed(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    with Cluster(settings) as cluster:
        return {(tp.topic, tp.partition): o for tp, o in cluster.kafka_committed(group).items()}


def test_dry_run_execute_modes_and_refusal(ops_settings: Settings, capsys) -> None:
    s = ops_settings
    raw = s.topic("raw")
    group = f"{s.topic_prefix}.unwrap"
    t0 = int(time.time() * 1000) - 60_000
    produce(s, raw, [(b"a%d" % i, b"v") for i in range(5)], partition=0, timestamp_ms=t0)
    produce(s, raw, [(b"b%d" % i, b"v") for i in range(5)], partition=0, timestamp_ms=t0 + 30_000)
    admin = kafka.make_admin(s)
    admin.alter_group_offsets(group, {TopicPartition(raw, 0): OffsetAndMetadata(8, "", -1)})
    admin.close()

    assert replay_command.run(s, args("unwrap", to_earliest=True)) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and f"{raw:<40}    0         0        10         8         0" in out
    assert committed(s, group)[(raw, 0)] == 8, "a dry run changes nothing"

    with Cluster(s) as cluster:
        def new(target: Target, partition: int | None = 0) -> int:
            return plan(cluster, s, "unwrap", target, partition)[0].new
        assert new(Target(shift_by=-3)) == 5
        assert new(Target(shift_by=100)) == 10  # clamped to the end
        assert new(Target(to_offset=-4)) == 0  # clamped to the earliest
        when = datetime.fromtimestamp((t0 + 10_000) / 1000, UTC)
        assert new(Target(to_datetime=when)) == 5  # first record at or after T
        assert new(Target(to_datetime=datetime.now(UTC))) == 10  # none after: the end
        # partition 1 never committed: shift-by counts from where the stage would start
        assert new(Target(shift_by=2), partition=1) == 0

    assert replay_command.run(s, args("unwrap", shift_by=-3, partition=0, execute=True)) == 0
    assert committed(s, group)[(raw, 0)] == 5

    # A live member: refused, saying so; the offsets stay.
    member = kafka.make_consumer(s, group, [raw], client_id="mailroom-unwrap")
    try:
        wait_for(lambda: member.poll(timeout_ms=200) is not None and member.assignment())
        with Cluster(s) as cluster:
            moves = plan(cluster, s, "unwrap", Target(to_earliest=True))
            with pytest.raises(ReplayRefused, match="1 live member.*mailroom-unwrap"):
                execute(cluster, s, "unwrap", moves)
        replay_command.run(s, args("unwrap", to_earliest=True))
        assert "live member" in capsys.readouterr().out
    finally:
        member.close(autocommit=False)
    assert committed(s, group)[(raw, 0)] == 5


def run_persist(s: Settings, codec: Codec) -> tuple[PersistStage, threading.Thread]:
    conn = connect(s)
    stage = PersistStage(s, consumer=kafka.make_consumer(s, f"{s.topic_prefix}.persist"),
                         producer=kafka.make_producer(s), conn=conn, codec=codec)
    thread = threading.Thread(target=stage.run)
    thread.start()
    return stage, thread


def stop_persist(stage: PersistStage, thread: threading.Thread) -> None:
    stage.stop()
    thread.join(timeout=30)
    stage.producer.close()
    stage.conn.close()


def state(db: psycopg.Connection) -> tuple[object, ...]:
    row = db.execute(
        "SELECT (SELECT count(*) FROM email_activities), (SELECT count(*) FROM cases), "
        "(SELECT count(*) FROM activity_parties), (SELECT count(*) FROM queue_items), "
        "(SELECT string_agg(dedupe_key || ':' || subject, ',' ORDER BY dedupe_key) "
        " FROM email_activities)").fetchone()
    db.commit()
    assert row is not None
    return tuple(row)


def persisted_events(db: psycopg.Connection) -> int:
    row = db.execute("SELECT count(*) FROM message_traces WHERE stage = 'persist' "
                     "AND event = 'persisted'").fetchone()
    db.commit()
    return int(row[0]) if row else 0


def test_persist_replayed_from_earliest_ends_as_before(ops_settings: Settings, capsys) -> None:
    s = ops_settings
    codec = Codec.from_settings(s)
    with connect(s) as db:
        db.execute(REFERENCE_SQL)
        db.commit()
        plans = [make_plan(codec, email(message_id=f"r{i}@customer.example", subject=f"Q {i}"))
                 for i in range(6)]
        produce(s, s.topic("actions"), [(p.dedupe_key.encode(), codec.encode_record(p))
                                        for p in plans])

        stage, thread = run_persist(s, codec)
        try:
            wait_for(lambda: persisted_events(db) == 6, timeout=60)
        finally:
            stop_persist(stage, thread)
        before = state(db)
        assert before[0] == 6

        assert replay_command.run(s, args("persist", to_earliest=True, execute=True)) == 0
        group = f"{s.topic_prefix}.persist"
        offsets = db.execute("SELECT topic, next_offset FROM persist_offsets WHERE group_id = %s",
                             (group,)).fetchall()
        db.commit()
        assert offsets and all(o == 0 for _, o in offsets), "PostgreSQL reset to earliest"
        assert all(o == 0 for o in committed(s, group).values()), "and Kafka's copy"

        stage, thread = run_persist(s, codec)
        try:
            # The progress bar follows the stage until nothing is behind.
            with Cluster(s) as cluster:
                assert replay_command.follow(cluster, s, "persist", timeout=60) == 0
            assert "caught up" in capsys.readouterr().out
            # Every plan consumed again: a second 'persisted' trace event for each.
            wait_for(lambda: persisted_events(db) == 12, timeout=60)
        finally:
            stop_persist(stage, thread)
        assert state(db) == before, "the database ends as before"


def direct_raw(uid: int) -> RawMail:
    msg = EmailMessage()
    msg["From"] = "Carol <carol@customer.example>"
    msg["To"] = "bob@corp.example"
    msg["Subject"] = f"Order {uid}"
    msg["Date"] = "Mon, 10 Mar 2025 09:00:00 +0000"
    msg["Message-ID"] = f"<order-{uid}@customer.example>"
    msg.set_content(f"Please confirm order {uid}.")
    data = msg.as_bytes()
    return RawMail(mailbox_id="7", mailbox_address="bob@corp.example", owner_kind="user",
                   owner_id="u-bob", folder="INBOX", direction="incoming", protocol="imap",
                   fetched_at=datetime(2025, 3, 10, 9, 1, tzinfo=UTC), size=len(data),
                   uidvalidity=1, uid=uid, content=data)


def test_unwrap_replayed_from_earliest_consumes_again(ops_settings: Settings) -> None:
    s = ops_settings.replace(stage_isolation="inline")
    codec = Codec.from_settings(s)
    raws = [direct_raw(i) for i in (1, 2, 3)]
    produce(s, s.topic("raw"), [(r.identity.encode(), codec.encode_record(r)) for r in raws])

    def unwrapped_events() -> list[object]:
        events = read_events(s)
        return [e for e in events if e.event == "unwrapped"]

    proc = start_stage(s, "unwrap")
    try:
        wait_for(lambda: len(unwrapped_events()) == 3)
    finally:
        stop(proc)
    out = subprocess.run([str(Path(sys.executable).with_name("mailroom")), "replay", "unwrap",
                          "--to-earliest", "--execute"], env=stage_env(s), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "offsets moved for 2 partition(s)" in out.stdout
    proc = start_stage(s, "unwrap")
    try:
        events = wait_for(lambda: len(unwrapped_events()) == 6 and unwrapped_events())
    finally:
        stop(proc)
    per_key: dict[str, int] = {}
    for e in events:
        per_key[e.key] = per_key.get(e.key, 0) + 1
    assert per_key == {f"order-{i}@customer.example": 2 for i in (1, 2, 3)}
    assert {e.raw_identity for e in events} == {r.identity for r in raws}
    # Same Emails again, under the same keys (downstream dedupes by them).
    keys = [r.key for r in read_all(s, "unwrapped")]
    assert sorted(keys) == sorted([f"order-{i}@customer.example".encode() for i in (1, 2, 3)] * 2)
