"""The brief's topics: what each must look like, and creating or verifying them on a cluster.

:func:`topic_specs` is pure (settings in, specs out) and :func:`compare` is pure (spec and the
observed state in, differences out); only :func:`read_state` and :func:`ensure_topics` talk to
the broker. Existing topics are verified: a config that differs is changed when the change
loses nothing (larger size limit, longer retention); a change that would delete data (shorter
retention, another cleanup policy) is applied only when asked; partition count and replication
factor are only ever reported — partitions cannot shrink, growing them moves keys to other
partitions, and replicas move by reassignment, an operator's decision.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from mailroom.errors import ConfigError, TransientError
from mailroom.settings import Settings

DAY_MS = 24 * 60 * 60 * 1000

#: Topic roles, in pipeline order; the full name is ``settings.topic(role)``.
STREAM_ROLES = ("unwrapped", "actions", "trace")
ROLES = ("raw", *STREAM_ROLES, "dlq", "mailboxes", "records")


@dataclass(frozen=True)
class TopicSpec:
    role: str
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


def min_insync_replicas(replication_factor: int) -> int:
    """With acks=all, "acknowledged" means on this many replicas. 2 of 3 survives one broker
    loss without refusing writes; fewer than 3 replicas can only promise 1 (2 of 2 would
    refuse every write while one broker is down)."""
    return max(1, min(2, replication_factor - 1))


def topic_specs(settings: Settings) -> list[TopicSpec]:
    rf = settings.topic_replication_factor
    common = {
        "max.message.bytes": str(settings.max_record_bytes),
        "min.insync.replicas": str(min_insync_replicas(rf)),
    }

    def deleting(days: int) -> dict[str, str]:
        return {**common, "cleanup.policy": "delete", "retention.ms": str(days * DAY_MS)}

    configs = {
        "raw": deleting(settings.raw_retention_days),  # the replay source: kept longest
        **{role: deleting(settings.stream_retention_days) for role in STREAM_ROLES},
        "dlq": deleting(settings.dlq_retention_days),  # months, not Kafka's 7-day default
        # The latest state per mailbox id, derived from PostgreSQL: compaction keeps it for ever
        # (retention.ms does not apply to a compacted topic).
        "mailboxes": {**common, "cleanup.policy": "compact"},
        # The change feed: the latest state per CRM record, derived from PostgreSQL through
        # the outbox (docs/feed.md). A deleted record's tombstone stays as long as the streams
        # keep their records, so a follower away for less than that still learns of it.
        "records": {**common, "cleanup.policy": "compact",
                    "delete.retention.ms": str(settings.stream_retention_days * DAY_MS)},
    }
    # mailboxes keeps the same partition count as the streams although it is small: ingest
    # processes share mailboxes through their group's assignment of this topic's partitions,
    # so its partition count caps how many ingest processes can do work.
    return [
        TopicSpec(role, settings.topic(role), settings.topic_partitions, rf, configs[role])
        for role in ROLES
    ]


@dataclass(frozen=True)
class TopicState:
    partitions: int
    replication_factor: int
    configs: dict[str, str]


@dataclass(frozen=True)
class Difference:
    what: str  # a config key, "partitions" or "replication_factor"
    expected: str
    actual: str
    fixable: bool  # a config change alter_configs can make
    loses_data: bool  # the change would delete data or change what the topic keeps

    def __str__(self) -> str:
        return f"{self.what}: expected {self.expected}, found {self.actual}"


def compare(spec: TopicSpec, state: TopicState) -> list[Difference]:
    diffs: list[Difference] = []
    if state.partitions != spec.partitions:
        diffs.append(Difference("partitions", str(spec.partitions), str(state.partitions),
                                fixable=False, loses_data=False))
    if state.replication_factor != spec.replication_factor:
        diffs.append(Difference("replication_factor", str(spec.replication_factor),
                                str(state.replication_factor), fixable=False, loses_data=False))
    for key, expected in spec.configs.items():
        actual = state.configs.get(key, "")
        if actual == expected:
            continue
        if key == "cleanup.policy":
            loses = True
        elif key == "retention.ms":
            # -1 is "for ever"; any finite value is shorter than that.
            loses = actual == "-1" or (actual.lstrip("-").isdigit() and int(actual) > int(expected))
        else:
            loses = False
        diffs.append(Difference(key, expected, actual, fixable=True, loses_data=loses))
    return diffs


@dataclass
class TopicReport:
    spec: TopicSpec
    status: Literal["created", "ok", "fixed", "differs", "missing"]
    fixed: list[Difference] = field(default_factory=list)
    remaining: list[Difference] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.status.upper():<8} {self.spec.name}"]
        out += [f"         fixed {d.what}: was {d.actual}, now {d.expected}" for d in self.fixed]
        for d in self.remaining:
            if d.fixable:
                hint = "would lose data: rerun with --apply-unsafe to change it"
            elif d.what == "partitions":
                hint = ("never shrunk; growing moves keys (kafka-topics --alter --partitions "
                        "if you mean it)")
            else:
                hint = "change it by partition reassignment"
            out.append(f"         DIFFERS {d} ({hint})")
        return out


def read_state(admin: KafkaAdminClient, names: list[str]) -> dict[str, TopicState]:
    """The observed state of those of ``names`` that exist."""
    existing = set(admin.list_topics())
    names = [n for n in names if n in existing]
    if not names:
        return {}
    described = {t["name"]: t for t in admin.describe_topics(names)}
    configs = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names], config_filter="all"
    )["topic"]
    states = {}
    for name in names:
        partitions = described[name]["partitions"]
        states[name] = TopicState(
            partitions=len(partitions),
            replication_factor=min((len(p["replica_nodes"]) for p in partitions), default=0),
            configs={k: _value(v) for k, v in configs[name].items()},
        )
    return states


def _value(config: dict[str, Any]) -> str:
    value = config.get("value")
    return "" if value is None else str(value)


def ensure_topics(
    admin: KafkaAdminClient,
    specs: list[TopicSpec],
    *,
    create: bool = True,
    fix: bool = True,
    apply_unsafe: bool = False,
) -> list[TopicReport]:
    """Create what is missing and verify (and where allowed, fix) what exists."""
    states = read_state(admin, [s.name for s in specs])
    reports: dict[str, TopicReport] = {}
    missing = [s for s in specs if s.name not in states]
    if missing and create:
        _enough_brokers(admin, missing)
        for spec in missing:
            try:
                admin.create_topics(
                    {spec.name: {"num_partitions": spec.partitions,
                                 "replication_factor": spec.replication_factor,
                                 "configs": spec.configs}},
                    wait_for_metadata=True,
                )
                reports[spec.name] = TopicReport(spec, "created")
            except TopicAlreadyExistsError:
                pass  # another process created it meanwhile: verified below like the rest
        states = read_state(admin, [s.name for s in specs])
    for spec in specs:
        if spec.name in reports:
            continue
        if spec.name not in states:
            reports[spec.name] = TopicReport(spec, "missing")
            continue
        diffs = compare(spec, states[spec.name])
        to_fix = [d for d in diffs if fix and d.fixable and (apply_unsafe or not d.loses_data)]
        if to_fix:
            result = admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, spec.name,
                                {d.what: d.expected for d in to_fix})]
            )
            # alter_configs reports per-resource errors in its result instead of raising.
            outcome = result.get("topic", {}).get(spec.name)
            if outcome != "OK":
                raise ConfigError(f"cannot change the configs of {spec.name}: {outcome}")
            _await_configs(admin, spec, to_fix)
        remaining = [d for d in diffs if d not in to_fix]
        status = "differs" if remaining else ("fixed" if to_fix else "ok")
        reports[spec.name] = TopicReport(spec, status, to_fix, remaining)
    return [reports[s.name] for s in specs]


def live_brokers(cluster: Mapping[str, Any]) -> int:
    """The brokers of a ``describe_cluster`` answer that can hold a replica: a broker the
    controller fenced (dead, not yet removed) is still listed, marked ``is_fenced``."""
    return sum(1 for b in cluster.get("brokers", []) if not b.get("is_fenced"))


def _enough_brokers(admin: KafkaAdminClient, specs: list[TopicSpec]) -> None:
    """Refuse, naming the setting, a replication factor the cluster cannot place (the broker's
    own answer is a bare INVALID_REPLICATION_FACTOR, after some topics may have been made)."""
    brokers = live_brokers(admin.describe_cluster())
    wanted = max(s.replication_factor for s in specs)
    if wanted > brokers:
        servers = admin.config["bootstrap_servers"]
        at = servers if isinstance(servers, str) else ",".join(servers)
        raise ConfigError(
            f"replication factor {wanted} needs {wanted} live brokers, the cluster at {at} "
            f"has {brokers}: start the missing brokers, or set "
            "MAILROOM_TOPIC_REPLICATION_FACTOR to the number the cluster has (3 wherever "
            "there are three)")


def _await_configs(
    admin: KafkaAdminClient, spec: TopicSpec, changed: list[Difference], timeout_s: float = 15.0
) -> None:
    # The controller accepts the change before every broker serves it; wait until it is visible,
    # so a "fixed" report (and a doctor run right after) sees the new values.
    deadline = time.monotonic() + timeout_s
    while True:
        configs = read_state(admin, [spec.name])[spec.name].configs
        if all(configs.get(d.what) == d.expected for d in changed):
            return
        if time.monotonic() > deadline:
            raise TransientError(f"{spec.name}: config change accepted but not visible after "
                                 f"{timeout_s:.0f} s")
        time.sleep(0.2)
