"""The multi-broker cluster's layout, read from the settings alone (nothing is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailroom.console.doctor import _durability
from mailroom.console.stack import cluster, kafka
from mailroom.console.stack.process import StackError
from mailroom.settings import Settings
from mailroom.topics import TopicState, min_insync_replicas


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def test_nodes_have_their_own_ports_beside_the_single_broker(tmp_path: Path) -> None:
    settings = Settings(state_dir=str(tmp_path))
    nodes = cluster.nodes(settings, 3)
    assert [(n.port, n.controller_port) for n in nodes] == [
        (19192, 19193), (19194, 19195), (19196, 19197)]
    used = {settings.kafka_port, settings.kafka_controller_port, settings.postgres_port,
            settings.imap_port, settings.imaps_port, settings.pop3_port, settings.pop3s_port,
            settings.dovecot_oauth2_port}
    assert not used & {p for n in nodes for p in (n.port, n.controller_port)}
    assert {n.home for n in nodes} == {tmp_path / "cluster" / f"node-{i}" for i in (1, 2, 3)}
    assert not {n.home for n in nodes} & {kafka.home(settings)}
    # They follow the stack's broker port, so a second stack on other ports has its own.
    moved = cluster.nodes(Settings(state_dir=str(tmp_path), kafka_port=29092), 3)
    assert moved[0].port == 29192


def test_every_node_is_broker_and_voter_of_one_quorum(tmp_path: Path) -> None:
    settings = Settings(state_dir=str(tmp_path))
    nodes = cluster.nodes(settings, 3)
    props = [properties(cluster.server_properties(settings, n, nodes)) for n in nodes]
    voters = "1@127.0.0.1:19193,2@127.0.0.1:19195,3@127.0.0.1:19197"
    for node, p in zip(nodes, props, strict=True):
        assert p["process.roles"] == "broker,controller"
        assert p["node.id"] == str(node.id)
        assert p["controller.quorum.voters"] == voters
        assert p["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{node.port}"
        assert p["log.dirs"] == str(node.home / "data")
        # The internal topics are as durable as the pipeline's.
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.min.isr"] == "2"
        assert p["min.insync.replicas"] == "2"
        # What the single broker promises tests holds here too.
        assert p["auto.create.topics.enable"] == "false"
        assert p["group.min.session.timeout.ms"] == "1000"
    assert len({p["log.dirs"] for p in props}) == 3


def test_client_settings_point_at_the_cluster_with_three_copies(tmp_path: Path) -> None:
    settings = Settings(state_dir=str(tmp_path))
    s = cluster.client_settings(settings, 3)
    assert s.bootstrap_servers == ["127.0.0.1:19192", "127.0.0.1:19194", "127.0.0.1:19196"]
    assert s.topic_replication_factor == 3 and min_insync_replicas(3) == 2
    assert cluster.client_settings(settings, 2).topic_replication_factor == 2
    assert min_insync_replicas(2) == 1  # 2 of 2 would refuse writes with a broker down
    assert cluster.environment(settings) == {
        "MAILROOM_KAFKA_BOOTSTRAP": "127.0.0.1:19192,127.0.0.1:19194,127.0.0.1:19196",
        "MAILROOM_TOPIC_REPLICATION_FACTOR": "3"}


def test_a_cluster_of_one_or_too_many_is_refused(tmp_path: Path) -> None:
    settings = Settings(state_dir=str(tmp_path))
    for brokers in (1, cluster.MAX_BROKERS + 1):
        with pytest.raises(StackError, match="2 to"):
            cluster.up(settings, brokers)
    assert cluster.status(settings) == []  # nothing was made


def test_durability_is_ok_only_with_three_copies_acknowledged_by_two() -> None:
    def state(rf: int, isr: str) -> TopicState:
        return TopicState(6, rf, {"min.insync.replicas": isr})

    three = Settings(topic_replication_factor=3)
    assert _durability(Settings(), 1, {}).level == "WARN"
    assert _durability(three, 2, {}).level == "WARN"  # one broker of three is away
    ok = _durability(three, 3, {"m.raw": state(3, "2")})
    assert ok.level == "OK" and "min.insync.replicas 2" in ok.detail
    weak = _durability(three, 3, {"m.raw": state(3, "2"), "m.dlq": state(3, "1"),
                                  "m.trace": state(1, "2")})
    assert weak.level == "WARN" and "m.dlq, m.trace" in weak.detail
