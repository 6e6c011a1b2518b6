"""The stages as an operator sees them: consumer groups, their input topics, their offsets.

Every stream stage consumes as group ``<topic_prefix>.<stage>`` (:func:`mailroom.stage.group_id`).
Committed offsets live in Kafka, except persist's: persist keeps them in PostgreSQL
(``persist_offsets``, written in the same transaction as its records) and copies them to Kafka
only so standard tools see the stage — so for persist, PostgreSQL is read as the truth (through
persist's own :func:`persist.offsets.committed_offsets`: the table is persist's) and Kafka's copy
is shown beside it.

:class:`Cluster` bundles the two clients the tools need, both from :mod:`mailroom.kafka`: an
admin client and a group-less ``read_committed`` consumer (no group: reading never joins — or
rebalances — a stage's group).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import (
    CoordinatorNotAvailableError,
    KafkaConnectionError,
    NodeNotReadyError,
    NotCoordinatorError,
)
from kafka.protocol.consumer.offsets import IsolationLevel

from mailroom import kafka
from mailroom.commands.run import has_processes
from mailroom.errors import ConfigError
from mailroom.settings import Settings
from mailroom.stage.execute import group_id

#: Stream stages in pipeline order and the topics (brief's short names) each consumes. Written
#: out here rather than imported from the stages, so the tools load none of their dependencies.
STREAM_STAGES: dict[str, tuple[str, ...]] = {
    "unwrap": ("raw",),
    "route": ("unwrapped",),
    "persist": ("actions", "trace"),
}
#: Stages whose offsets of record are in PostgreSQL, not in Kafka.
DB_OFFSETS = frozenset({"persist"})
#: A group's coordinator is gone (its broker died) or moved (handed the group over).
MOVED = (NotCoordinatorError, CoordinatorNotAvailableError, KafkaConnectionError,
         NodeNotReadyError)
T = TypeVar("T")


def running_stages(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The stream stages with processes of their own in this deployment: with
    ``route_in_unwrap`` route decides inside unwrap, and its group reads nothing."""
    return {stage: topics for stage, topics in STREAM_STAGES.items()
            if has_processes(stage, settings)}


def check_stage(stage: str, settings: Settings | None = None) -> str:
    if stage not in STREAM_STAGES:
        raise ConfigError(
            f"unknown stream stage {stage!r}: one of {', '.join(STREAM_STAGES)} "
            "(ingest has no consumer group; its backlog is on the mail servers)"
        )
    if settings is not None and stage not in running_stages(settings):
        raise ConfigError(
            f"{stage} decides inside unwrap's processes here (route_in_unwrap = true): "
            "replay unwrap instead")
    return stage


@dataclass(frozen=True)
class Member:
    member_id: str
    client_id: str
    host: str


class Cluster:
    """An admin client and a group-less read_committed consumer; close when done."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin = kafka.make_admin(settings, client_id="mailroom-ops")
        config = kafka.consumer_config(settings, "unused", client_id="mailroom-ops")
        config["group_id"] = None  # never join a stage's group
        self.consumer = KafkaConsumer(**config)

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # --- topics ----------------------------------------------------------------------------
    def partitions(self, stage: str) -> list[TopicPartition]:
        out: list[TopicPartition] = []
        for role in STREAM_STAGES[stage]:
            topic = self.settings.topic(role)
            parts = self.consumer.partitions_for_topic(topic) or set()
            out.extend(TopicPartition(topic, p) for p in sorted(parts))
        return out

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The high watermark (read_uncommitted): what ``kafka-consumer-groups`` calls
        LOG-END-OFFSET. It counts transaction markers and open transactions."""
        return self._offsets(tps, OffsetSpec.LATEST, IsolationLevel.READ_UNCOMMITTED)

    def stable_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The last stable offset: how far a read_committed stage can read."""
        return self._offsets(tps, OffsetSpec.LATEST, IsolationLevel.READ_COMMITTED)

    def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return self._offsets(tps, OffsetSpec.EARLIEST, IsolationLevel.READ_UNCOMMITTED)

    def offsets_for_time(
        self, tps: Iterable[TopicPartition], timestamp_ms: int
    ) -> dict[TopicPartition, int | None]:
        """Earliest offset whose timestamp is at or after ``timestamp_ms`` (None: no such)."""
        found = self.consumer.offsets_for_times({tp: timestamp_ms for tp in tps})
        return {tp: (None if v is None else int(v.offset)) for tp, v in found.items()}

    def _offsets(
        self, tps: Iterable[TopicPartition], spec: OffsetSpec, isolation: IsolationLevel
    ) -> dict[TopicPartition, int]:
        tps = list(tps)
        if not tps:
            return {}
        got = self.admin.list_partition_offsets(
            {tp: spec for tp in tps}, isolation_level=isolation)
        return {tp: int(v.offset) for tp, v in got.items()}

    # --- groups ----------------------------------------------------------------------------
    def _at_coordinator(self, call: Callable[[], T]) -> T:
        """``call()``, once more with a new admin client when the group's coordinator is gone:
        kafka-python's admin client keeps the first coordinator it found for a group for good,
        so once that broker died every later call of a long-lived Cluster failed, even after
        the group had moved to another broker."""
        try:
            return call()
        except MOVED:
            self.admin.close()
            self.admin = kafka.make_admin(self.settings, client_id="mailroom-ops")
            return call()

    def kafka_committed(self, group: str) -> dict[TopicPartition, int]:
        got = self._at_coordinator(
            lambda: self.admin.list_group_offsets({group: None})).get(group, {})
        return {tp: int(om.offset) for tp, om in got.items() if om.offset >= 0}

    def members(self, group: str) -> list[Member]:
        described = self._at_coordinator(
            lambda: self.admin.describe_groups([group])).get(group, {})
        return [
            Member(str(m.get("member_id", "")), str(m.get("client_id", "")),
                   str(m.get("client_host", "")))
            for m in described.get("members") or []
        ]


def stage_group(settings: Settings, stage: str) -> str:
    return group_id(settings, stage)
