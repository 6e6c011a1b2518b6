"""Replays: move a stage's committed offsets, with ``kafka-consumer-groups --reset-offsets``
semantics, also for persist (whose offsets of record live in PostgreSQL).

- ``to_earliest``: the partition's first offset still on the broker;
- ``to_offset N``: N, clamped to [earliest, end];
- ``shift_by N``: current + N (negative goes back), clamped; a partition never committed
  counts as being at its earliest offset (where the stage would start);
- ``to_datetime T``: the first offset whose record timestamp is at or after T; none: the end.

A dry run (the default) only computes the moves. Executing refuses while the group has live
members: a running stage would keep — and re-commit — its own positions, and Kafka rejects
offset changes of an active group anyway. The check is repeated right before writing.

Persist: the new offsets are written to ``persist_offsets`` under a *fresh fence token* from
``persist_fence_tokens`` — the same fencing persist's own claims use — so a persist process
that was somehow still holding the partitions can no longer store an offset (its batch rolls
back). Then Kafka's copy is moved too, so ``kafka-consumer-groups`` agrees. On start, persist
seeks to the offsets in PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from kafka import TopicPartition
from kafka.errors import NoError
from kafka.structs import OffsetAndMetadata

from mailroom.console.ops.groups import DB_OFFSETS, Cluster, check_stage, stage_group
from mailroom.db import connect
from mailroom.errors import ConfigError, MailroomError
from mailroom.settings import Settings
from persist import offsets


class ReplayRefused(MailroomError):  # noqa: N818 - the name says what happened
    """The stage's group has live members; stop its processes first."""


@dataclass(frozen=True)
class Target:
    to_earliest: bool = False
    to_offset: int | None = None
    shift_by: int | None = None
    to_datetime: datetime | None = None

    def check(self) -> Target:
        chosen = [self.to_earliest, self.to_offset is not None, self.shift_by is not None,
                  self.to_datetime is not None]
        if sum(chosen) != 1:
            raise ConfigError("give exactly one of --to-earliest, --to-offset, --shift-by, "
                              "--to-datetime")
        if self.to_datetime is not None and self.to_datetime.tzinfo is None:
            raise ConfigError("--to-datetime needs a time zone (e.g. 2026-11-27T09:00:00Z)")
        return self


@dataclass(frozen=True)
class Move:
    topic: str
    partition: int
    old: int | None  # None: never committed
    new: int
    earliest: int
    end: int

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


def current_offsets(cluster: Cluster, settings: Settings, stage: str) -> dict[TopicPartition, int]:
    group = stage_group(settings, stage)
    if stage in DB_OFFSETS:
        with connect(settings) as conn:
            return offsets.committed_offsets(conn, group)
    return cluster.kafka_committed(group)


def plan(cluster: Cluster, settings: Settings, stage: str, target: Target,
         partition: int | None = None) -> list[Move]:
    """The moves a reset would make (nothing is written)."""
    check_stage(stage, settings)
    target.check()
    tps = [tp for tp in cluster.partitions(stage) if partition in (None, tp.partition)]
    if not tps:
        raise ConfigError(f"stage {stage} has no partition {partition}")
    current = current_offsets(cluster, settings, stage)
    begins = cluster.beginning_offsets(tps)
    ends = cluster.end_offsets(tps)
    at_time = (cluster.offsets_for_time(tps, int(target.to_datetime.timestamp() * 1000))
               if target.to_datetime is not None else {})
    moves = []
    for tp in tps:
        lo, hi, old = begins[tp], ends[tp], current.get(tp)
        if target.to_earliest:
            new = lo
        elif target.to_offset is not None:
            new = target.to_offset
        elif target.shift_by is not None:
            new = (lo if old is None else old) + target.shift_by
        else:
            found = at_time.get(tp)
            new = hi if found is None else found
        moves.append(Move(tp.topic, tp.partition, old, min(max(new, lo), hi), lo, hi))
    return moves


def refuse_if_live(cluster: Cluster, settings: Settings, stage: str) -> None:
    group = stage_group(settings, stage)
    members = cluster.members(group)
    if members:
        who = ", ".join(f"{m.client_id}@{m.host.lstrip('/')}" for m in members)
        raise ReplayRefused(
            f"group {group} has {len(members)} live member(s) ({who}): stop every "
            f"'mailroom run {stage}' process first, then run the replay again")


def execute(cluster: Cluster, settings: Settings, stage: str, moves: list[Move]) -> None:
    """Write the moves (PostgreSQL first for persist, then Kafka); refuses a live group."""
    refuse_if_live(cluster, settings, stage)
    group = stage_group(settings, stage)
    if stage in DB_OFFSETS:
        with connect(settings) as conn:
            store_fenced(conn, group, moves)
            conn.commit()
    result = cluster.admin.alter_group_offsets(
        group, {m.tp: OffsetAndMetadata(m.new, "", -1) for m in moves})
    failed = {tp: err for tp, err in result.items() if err is not NoError}
    if failed:
        raise ReplayRefused(f"Kafka refused the new offsets of {group}: {failed} "
                            "(did a stage process start meanwhile?)")


def store_fenced(conn: psycopg.Connection, group: str, moves: list[Move]) -> int:
    """Persist's offsets under a new fence token (persist's own function: its table)."""
    return offsets.replace_offsets(conn, group, {m.tp: m.new for m in moves})
