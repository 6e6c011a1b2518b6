"""Admin operations used at start — creating and describing topics, describing a group — while
one broker of the three is dead and not yet fenced. kafka-python's admin client sends them to the
dead broker and raises where another broker would answer: its controller lookup may name the dead
broker (live brokers still list it), its least-loaded pick may land on it, a group's coordinator
stays on it until the broker is fenced and the group's partition gets a new leader.
``mailroom.kafka.make_admin``'s client asks again, another broker, on a retriable error.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from brokers import coordinator
from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from pipeline_testing import delete_topics_under

from mailroom import kafka
from mailroom.console.stack import cluster
from mailroom.console.stack.process import StackError
from mailroom.settings import Settings
from mailroom.topics import ensure_topics, read_state, topic_specs

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

#: Fresh admin clients, one after the other, while the broker is down: each looks up the
#: controller once, and a live broker names the dead one about one time in three until it is
#: fenced (seconds), so a dozen rounds meet it almost surely.
ROUNDS = 12


def _java_hash(text: str) -> int:
    """Java's String.hashCode of an ASCII string (how a broker places a group)."""
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def _offsets_leaders(settings: Settings) -> dict[int, int]:
    """Partition → leading broker of the group coordinators' topic. A fresh cluster has none
    until a client first looks a coordinator up (as CI's does): one look-up creates it."""
    deadline = time.monotonic() + 120
    while True:
        admin = kafka.make_admin(settings)
        try:
            try:
                [topic] = admin.describe_topics(["__consumer_offsets"])
                leaders = {p["partition_index"]: p["leader_id"] for p in topic["partitions"]}
            except KafkaError:
                leaders = {}
            if leaders and all(leader >= 0 for leader in leaders.values()):
                return leaders
            assert time.monotonic() < deadline, f"no leaders for __consumer_offsets: {leaders}"
            with contextlib.suppress(KafkaError):
                admin.describe_groups(["coordinator-probe"])
        finally:
            admin.close()
        time.sleep(1)


def _group_coordinated_by(settings: Settings, broker: int, prefix: str) -> str:
    """A group name whose coordinator is ``broker`` (it leads the group's partition)."""
    leaders = _offsets_leaders(settings)
    for n in range(10_000):
        name = f"{prefix}.g{n}"
        h = _java_hash(name)
        if leaders[(0 if h == -(1 << 31) else abs(h)) % len(leaders)] == broker:
            return name
    raise AssertionError(f"no group name for broker {broker}: leaders {leaders}")


@pytest.fixture
def prefix(unique_name: str) -> str:
    return f"test.{unique_name}"


@pytest.fixture
def cleanup(kafka_cluster: Settings, base_settings: Settings, prefix: str) -> Iterator[None]:
    """Every broker running again after the test (others use the cluster) and the test's topics
    deleted."""
    try:
        yield
    finally:
        try:
            cluster.up(base_settings, cluster.DEFAULT_BROKERS)
        except StackError:  # a busy machine: the broker is started, and still catching up
            cluster.up(base_settings, cluster.DEFAULT_BROKERS)
        delete_topics_under(kafka_cluster, prefix)


def test_topics_are_created_and_described_with_the_first_bootstrap_server_down(
    kafka_cluster: Settings, base_settings: Settings, prefix: str, cleanup: None,
) -> None:
    cluster.kill(base_settings, 1)  # the first bootstrap server
    for n in range(ROUNDS):
        # Replication factor 2: placeable with two live brokers, before and after the fencing.
        settings = kafka_cluster.replace(topic_prefix=f"{prefix}.r{n}",
                                         topic_replication_factor=2)
        [spec] = [s for s in topic_specs(settings) if s.name == settings.topic("raw")]
        admin = kafka.make_admin(settings)
        try:
            [report] = ensure_topics(admin, [spec])
            assert report.status == "created", report.lines()
            # The broker that answers may not have the new topic's partitions yet (each learns
            # them from the controller a moment later): asked until it has, then compared.
            deadline = time.monotonic() + 60
            while (state := read_state(admin, [spec.name])[spec.name]).partitions == 0:
                assert time.monotonic() < deadline, f"{spec.name}: no partitions described"
                time.sleep(0.5)
            assert (state.partitions, state.replication_factor) == (spec.partitions, 2)
        finally:
            admin.close()


def test_a_group_is_described_with_its_coordinator_down(
    kafka_cluster: Settings, base_settings: Settings, prefix: str, cleanup: None,
) -> None:
    leaders = set(_offsets_leaders(kafka_cluster).values())
    victim = 1 if 1 in leaders else min(leaders)  # the first bootstrap server if it can be
    group = _group_coordinated_by(kafka_cluster, victim, prefix)
    topic = f"{prefix}.described"
    admin = kafka.make_admin(kafka_cluster)
    try:
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 3}},
                            wait_for_metadata=True)
    finally:
        admin.close()
    consumer = kafka.make_consumer(kafka_cluster, group, client_id="admin-down")
    try:  # the group exists: an offset committed
        consumer.assign([TopicPartition(topic, 0)])
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(0, "", -1)})
    finally:
        consumer.close()
    assert coordinator(kafka_cluster, group) == victim

    cluster.kill(base_settings, victim)
    admin = kafka.make_admin(kafka_cluster)
    try:
        described = admin.describe_groups([group])[group]
        assert described["group_state"] == "Empty", described
        offsets = admin.list_group_offsets({group: None})[group]
        assert offsets[TopicPartition(topic, 0)].offset == 0
    finally:
        admin.close()
