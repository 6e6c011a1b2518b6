"""The three-broker cluster as an operator meets it: started idempotently beside the single
broker, topics with three copies acknowledged by two, doctor's durability check answered, and
the operator's tools (``mailroom lag``'s :class:`~mailroom.console.ops.groups.Cluster`) carrying on
when the broker coordinating a group dies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from brokers import coordinator, wait_in_sync
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from mailroom import cli, kafka, topics
from mailroom.console import doctor
from mailroom.console.ops.groups import Cluster
from mailroom.console.stack import cluster
from mailroom.console.stack import kafka as single_broker
from mailroom.errors import ConfigError
from mailroom.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


@pytest.fixture
def on_cluster(kafka_cluster: Settings, unique_name: str) -> Iterator[Settings]:
    """Cluster settings with this test's own topics (created), removed afterwards."""
    s = kafka_cluster.replace(topic_prefix=f"test.{unique_name}")
    # An admin client per step: one held open through the test would keep calling a killed
    # broker from its thread.
    names = {spec.name for spec in topics.topic_specs(s)}
    admin = kafka.make_admin(s)
    try:
        topics.ensure_topics(admin, topics.topic_specs(s))
    finally:
        admin.close()
    # Every broker answers metadata requests from its own copy, a moment behind the
    # controller's: wait until each of them knows the new topics.
    for server in s.bootstrap_servers:
        one = kafka.make_admin(s.replace(kafka_bootstrap=server))
        try:
            deadline = time.monotonic() + 30
            while not names <= set(one.list_topics()):
                assert time.monotonic() < deadline, f"{server} never showed the new topics"
                time.sleep(0.2)
        finally:
            one.close()
    try:
        yield s
    finally:
        admin = kafka.make_admin(s)
        try:
            admin.delete_topics([spec.name for spec in topics.topic_specs(s)])
        finally:
            admin.close()


def test_up_again_is_quick_and_leaves_the_single_broker_alone(
    kafka_cluster: Settings, base_settings: Settings, capsys: pytest.CaptureFixture[str],
) -> None:
    before = single_broker.status(base_settings)
    assert cli.main(["stack", "cluster", "up"]) == 0
    out = capsys.readouterr().out
    assert out.count("already running") == 3
    assert cli.main(["stack", "cluster", "status"]) == 0
    assert single_broker.status(base_settings) == before  # same pid, same ports
    assert cli.main(["stack", "cluster", "env"]) == 0
    env = capsys.readouterr().out
    assert f"export MAILROOM_KAFKA_BOOTSTRAP={kafka_cluster.kafka_bootstrap}" in env
    assert "export MAILROOM_TOPIC_REPLICATION_FACTOR=3" in env


def test_topics_keep_three_copies_and_doctor_calls_it_durable(on_cluster: Settings) -> None:
    admin = kafka.make_admin(on_cluster)
    try:
        states = topics.read_state(admin, [s.name for s in topics.topic_specs(on_cluster)])
        described = admin.describe_topics(list(states))
    finally:
        admin.close()
    assert len(states) == len(topics.ROLES)
    for state in states.values():
        assert state.replication_factor == 3
        assert state.configs["min.insync.replicas"] == "2"
    # Spread over the three brokers, every replica in sync.
    assert {p["leader_id"] for t in described for p in t["partitions"]} == {1, 2, 3}
    assert all(len(p["isr_nodes"]) == 3 for t in described for p in t["partitions"])
    findings = list(doctor.check_kafka(on_cluster))
    levels = {f.component: f.level for f in findings}
    assert levels["durability"] == "OK", [f.line() for f in findings]
    assert levels["topics"] == "OK", [f.line() for f in findings]
    assert "3 broker(s)" in next(f.detail for f in findings if f.component == "kafka")


def test_a_replication_factor_the_brokers_cannot_place_is_refused(
    base_settings: Settings, unique_name: str,
) -> None:
    # The single broker, asked for three copies: a clear refusal, and no topic made.
    s = base_settings.replace(topic_prefix=f"test.{unique_name}", topic_replication_factor=3)
    admin = kafka.make_admin(s)
    try:
        with pytest.raises(ConfigError, match="needs 3 live brokers.*has 1"):
            topics.ensure_topics(admin, topics.topic_specs(s))
        assert not [t for t in admin.list_topics() if t.startswith(s.topic_prefix)]
    finally:
        admin.close()


def test_the_lag_tool_finds_a_group_again_after_its_coordinator_died(
    on_cluster: Settings, base_settings: Settings,
) -> None:
    group = f"{on_cluster.topic_prefix}.unwrap"
    tp = TopicPartition(on_cluster.topic("raw"), 0)
    consumer = kafka.make_consumer(on_cluster, group)
    try:
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(0, "", -1)})
    finally:
        consumer.close()
    victim = coordinator(on_cluster, group)
    with Cluster(on_cluster) as tool:
        assert tool.kafka_committed(group) == {tp: 0}  # the coordinator is known now
        cluster.kill(base_settings, victim)
        try:
            # The group moves to another broker once the dead one is fenced (seconds); until
            # then a call may fail, after that every call must answer.
            deadline = time.monotonic() + 60
            while True:
                try:
                    answer = tool.kafka_committed(group)
                    break
                except KafkaError as exc:
                    assert time.monotonic() < deadline, f"still failing: {exc!r}"
                    time.sleep(1)
            assert answer == {tp: 0}
            assert coordinator(on_cluster, group) != victim
        finally:
            cluster.up(base_settings, cluster.DEFAULT_BROKERS)
            wait_in_sync(on_cluster)


class FirstAssignment(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.first: set[TopicPartition] | None = None

    def on_partitions_revoked(self, revoked: object) -> None:
        pass

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.first is None:
            self.first = set(assigned)


def test_a_new_member_gets_its_partitions_at_its_first_assignment(
    on_cluster: Settings,
) -> None:
    """A stage's consumer knows its topics' partitions before it joins: its group's first
    assignment is the whole one, never the empty one after which kafka-python could leave the
    stage without partitions for good. Three fresh groups at once, three times, as the stages
    start."""
    wanted = {
        "unwrap": ("raw",), "route": ("unwrapped",), "persist": ("actions", "trace"),
    }
    firsts: dict[str, set[TopicPartition] | None] = {}

    def join(group: str, roles: tuple[str, ...]) -> None:
        listener = FirstAssignment()
        consumer = kafka.make_consumer(on_cluster, f"{on_cluster.topic_prefix}.{group}")
        try:
            consumer.subscribe([on_cluster.topic(r) for r in roles], listener=listener)
            deadline = time.monotonic() + 30
            while listener.first is None and time.monotonic() < deadline:
                consumer.poll(timeout_ms=200)
        finally:
            consumer.close()
        firsts[group] = listener.first

    for attempt in range(3):
        threads = [threading.Thread(target=join, args=(f"{stage}{attempt}", roles))
                   for stage, roles in wanted.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for group, first in firsts.items():
        roles = wanted[group.rstrip("0123456789")]
        whole = {TopicPartition(on_cluster.topic(r), p)
                 for r in roles for p in range(on_cluster.topic_partitions)}
        assert first == whole, f"{group}: first assignment {sorted(first or [])}"
