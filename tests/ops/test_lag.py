"""`mailroom lag` against the official `kafka-consumer-groups --describe`, on the real broker:
records pending behind a stopped stage, a transactional batch (no phantom lag from its commit
marker), an old CreateTime (seconds behind), persist's offsets from PostgreSQL."""

from __future__ import annotations

import time

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata
from ops_helpers import describe_group, produce_transaction
from pipeline_testing import produce, wait_for

from mailroom import kafka
from mailroom.console.ops.groups import Cluster
from mailroom.console.ops.lag import report
from mailroom.db import connect
from mailroom.settings import Settings

pytestmark = pytest.mark.integration
HOUR_MS = 3600 * 1000


def commit(settings: Settings, group: str, offsets: dict[TopicPartition, int]) -> None:
    """What the stopped stage had committed before it stopped."""
    admin = kafka.make_admin(settings)
    try:
        admin.alter_group_offsets(group, {tp: OffsetAndMetadata(o, "", -1)
                                          for tp, o in offsets.items()})
    finally:
        admin.close()


def high_watermark(settings: Settings, tp: TopicPartition) -> int:
    with Cluster(settings) as cluster:
        return cluster.end_offsets([tp])[tp]


def test_lag_matches_kafka_consumer_groups_with_transactions_and_old_records(
    ops_settings: Settings,
) -> None:
    s = ops_settings
    raw = s.topic("raw")
    p0, p1 = TopicPartition(raw, 0), TopicPartition(raw, 1)
    group = f"{s.topic_prefix}.unwrap"
    produce(s, raw, [(b"k%d" % i, b"v%d" % i) for i in range(7)], partition=0)
    old = int(time.time() * 1000) - HOUR_MS
    # A transaction of 3 records with an hour-old CreateTime: offsets 0-2, its marker at 3.
    produce_transaction(s, raw, [(b"t%d" % i, b"x") for i in range(3)], partition=1,
                        timestamp_ms=old)
    wait_for(lambda: high_watermark(s, p1) == 4)  # the marker is written after the commit
    commit(s, group, {p0: 2, p1: 0})

    rep = report(s, interval_s=0.5)
    unwrap = next(g for g in rep.groups if g.stage == "unwrap")
    parts = {(p.topic, p.partition): p for p in unwrap.partitions}
    official = describe_group(s, group)
    for key, (current, end, lag) in official.items():
        mine = parts[key]
        assert (str(mine.committed), str(mine.end), str(mine.offset_lag)) == (current, end, lag)
    assert parts[(raw, 0)].messages_behind == 5 and parts[(raw, 1)].messages_behind == 3
    assert official[(raw, 1)][2] == "4", "the tool counts the commit marker"
    assert HOUR_MS / 1000 - 5 < parts[(raw, 1)].seconds_behind < HOUR_MS / 1000 + 60
    assert parts[(raw, 0)].seconds_behind < 60
    # Behind, nobody consuming, committed offsets not moving between the two samples.
    assert unwrap.status == "stalled" and unwrap.members == 0

    # The stage consumed the whole transaction: it commits last offset + 1 = the marker's.
    commit(s, group, {p0: 7, p1: 3})
    rep = report(s, interval_s=0.2)
    unwrap = next(g for g in rep.groups if g.stage == "unwrap")
    parts = {(p.topic, p.partition): p for p in unwrap.partitions}
    assert describe_group(s, group)[(raw, 1)] == ("3", "4", "1")  # the tool's phantom lag
    assert parts[(raw, 1)].offset_lag == 1 and parts[(raw, 1)].messages_behind == 0
    assert parts[(raw, 1)].seconds_behind == 0
    assert unwrap.status == "OK" and unwrap.messages_behind == 0


def test_persist_lag_reads_postgresql_and_compares_the_kafka_copy(ops_settings: Settings) -> None:
    s = ops_settings
    actions = s.topic("actions")
    tp = TopicPartition(actions, 0)
    group = f"{s.topic_prefix}.persist"
    produce(s, actions, [(b"k%d" % i, b"v") for i in range(4)], partition=0)
    with connect(s) as conn:
        conn.execute("INSERT INTO persist_offsets (group_id, topic, partition, next_offset, "
                     "generation) VALUES (%s, %s, 0, 3, nextval('persist_fence_tokens'))",
                     (group, actions))
        conn.commit()
    commit(s, group, {tp: 1})  # a stale copy (persist died before copying)
    rep = report(s, interval_s=0.2)
    persist = next(g for g in rep.groups if g.stage == "persist")
    part = next(p for p in persist.partitions if (p.topic, p.partition) == (actions, 0))
    assert (part.committed, part.kafka_copy, part.messages_behind) == (3, 1, 1)
    assert persist.offsets_in == "postgresql" and persist.copy_agrees is False
    commit(s, group, {tp: 3})
    rep = report(s, interval_s=0.2)
    persist = next(g for g in rep.groups if g.stage == "persist")
    assert persist.copy_agrees is True
