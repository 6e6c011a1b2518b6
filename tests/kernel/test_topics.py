"""What the topics must look like, and how an existing topic is judged (no broker needed)."""

from __future__ import annotations

import dataclasses

from mailroom.settings import Settings
from mailroom.topics import DAY_MS, ROLES, TopicState, compare, live_brokers, topic_specs


def by_role(settings: Settings) -> dict:
    return {spec.role: spec for spec in topic_specs(settings)}


def test_every_topic_of_the_brief_with_its_retention() -> None:
    settings = Settings(topic_prefix="acme")
    specs = by_role(settings)
    assert tuple(specs) == ROLES == ("raw", "unwrapped", "actions", "trace", "dlq", "mailboxes",
                                    "records")
    assert specs["raw"].name == "acme.raw"
    assert specs["raw"].configs["retention.ms"] == str(30 * DAY_MS)
    assert specs["dlq"].configs["retention.ms"] == str(180 * DAY_MS)
    for role in ("unwrapped", "actions", "trace"):
        assert specs[role].configs["retention.ms"] == str(7 * DAY_MS)
        assert specs[role].configs["cleanup.policy"] == "delete"
    assert specs["mailboxes"].configs["cleanup.policy"] == "compact"
    assert "retention.ms" not in specs["mailboxes"].configs
    assert specs["records"].configs["cleanup.policy"] == "compact"
    for spec in specs.values():
        assert spec.partitions == 6 and spec.replication_factor == 1
        assert spec.configs["max.message.bytes"] == str(settings.max_record_bytes)
        assert spec.configs["min.insync.replicas"] == "1"


def test_a_real_cluster_gets_two_in_sync_replicas() -> None:
    spec = by_role(Settings(topic_replication_factor=3))["raw"]
    assert spec.replication_factor == 3 and spec.configs["min.insync.replicas"] == "2"


def state_of(spec, **changes) -> TopicState:
    state = TopicState(spec.partitions, spec.replication_factor, dict(spec.configs))
    configs = {**state.configs, **changes.pop("configs", {})}
    return dataclasses.replace(state, configs=configs, **changes)


def test_matching_topic_has_no_differences() -> None:
    spec = by_role(Settings())["raw"]
    assert compare(spec, state_of(spec, configs={"segment.bytes": "1073741824"})) == []


def test_partitions_and_replicas_are_reported_never_fixed() -> None:
    spec = by_role(Settings())["raw"]
    diffs = compare(spec, state_of(spec, partitions=12, replication_factor=3))
    assert {d.what for d in diffs} == {"partitions", "replication_factor"}
    assert not any(d.fixable for d in diffs)


def test_which_config_changes_lose_data() -> None:
    spec = by_role(Settings())["raw"]
    longer = compare(spec, state_of(spec, configs={"retention.ms": str(90 * DAY_MS)}))
    shorter = compare(spec, state_of(spec, configs={"retention.ms": str(1 * DAY_MS)}))
    forever = compare(spec, state_of(spec, configs={"retention.ms": "-1"}))
    policy = compare(spec, state_of(spec, configs={"cleanup.policy": "compact"}))
    size = compare(spec, state_of(spec, configs={"max.message.bytes": "1048588"}))
    # Going from 90 days (or for ever) to 30 deletes history: only on request.
    assert [d.loses_data for d in longer + forever + policy] == [True, True, True]
    # Lengthening retention or changing the size limit loses nothing: fixed automatically.
    assert [d.loses_data for d in shorter + size] == [False, False]
    assert all(d.fixable for d in longer + shorter + forever + policy + size)


def test_a_fenced_broker_holds_no_replica() -> None:
    # A killed broker stays listed, fenced, until it is removed: counting it would let a
    # replication factor through that the broker then refuses with a bare error.
    cluster = {"brokers": [{"node_id": 1, "is_fenced": True}, {"node_id": 2, "is_fenced": False},
                           {"node_id": 3}]}
    assert live_brokers(cluster) == 2
    assert live_brokers({}) == 0
