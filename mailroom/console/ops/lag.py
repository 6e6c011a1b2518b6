"""Consumer lag per stage and partition, in messages and in seconds, with a Burrow-style status.

Offsets alone lie in two ways, so each partition is also *read*:

- **Transactions.** A topic written with Kafka transactions carries a control record (the
  commit or abort marker) after each transaction. A stage that consumed the last real record
  commits ``offset + 1`` — the marker's offset — so ``end - committed`` stays 1 for ever (what
  ``kafka-consumer-groups`` shows as LAG). Here a group-less read_committed consumer seeks to the
  committed offset and reads up to the last stable offset: only records it actually gets count.
  ``offset_lag`` (the tool's number) is kept beside ``messages_behind`` (ours).
- **Seconds.** The first record at or after the committed offset is the oldest one not
  consumed; its timestamp (CreateTime as the producer set it, or LogAppendTime) gives
  ``seconds_behind``.

Counting is exact up to ``scan_limit`` records behind per partition; beyond that the count is
the offset difference (markers are then noise) and ``exact`` is false.

Status (after Burrow's evaluation rules, over two samples ``interval`` seconds apart): a
partition is ``OK`` when nothing is behind, ``lagging`` when something is behind but the
committed offset moved between the samples, ``stalled`` when something is behind and the
committed offset did not move. A group takes its worst partition's status. A one-shot call
samples twice; ``--watch`` compares each sample with the previous one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kafka import TopicPartition

from mailroom.console.ops.groups import (
    DB_OFFSETS,
    Cluster,
    running_stages,
    stage_group,
)
from mailroom.console.ops.ingest_backlog import MailboxBacklog, mailbox_backlog
from mailroom.db import connect
from mailroom.errors import MailroomError
from mailroom.settings import Settings
from persist.offsets import committed_offsets

OK, LAGGING, STALLED = "OK", "lagging", "stalled"
_RANK = {OK: 0, LAGGING: 1, STALLED: 2}
SCAN_LIMIT = 10_000
SCAN_TIMEOUT_S = 15.0


@dataclass
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here (it starts at the earliest)
    end: int  # high watermark, as kafka-consumer-groups' LOG-END-OFFSET
    offset_lag: int | None  # end - committed: kafka-consumer-groups' LAG (None: no commit)
    messages_behind: int  # real records not yet consumed (markers and aborted ones excluded)
    seconds_behind: float  # age of the oldest record not consumed; 0 when none
    exact: bool = True
    kafka_copy: int | None = None  # persist: Kafka's copy of the offset in PostgreSQL
    status: str = OK


@dataclass
class GroupLag:
    stage: str
    group: str
    members: int
    status: str
    partitions: list[PartitionLag] = field(default_factory=list)
    offsets_in: str = "kafka"  # where the offsets of record live: "kafka" or "postgresql"
    copy_agrees: bool | None = None  # persist: Kafka's copy equals PostgreSQL's offsets
    error: str = ""

    @property
    def messages_behind(self) -> int:
        return sum(p.messages_behind for p in self.partitions)

    @property
    def seconds_behind(self) -> float:
        return max((p.seconds_behind for p in self.partitions), default=0.0)


@dataclass
class LagReport:
    taken_at: datetime
    interval_s: float
    groups: list[GroupLag]
    mailboxes: list[MailboxBacklog]
    ingest_status: str
    ingest_error: str = ""


# --- reading what is pending --------------------------------------------------------------------
@dataclass
class _Pending:
    count: int = 0
    first_ts: int | None = None
    exact: bool = True


def pending(
    cluster: Cluster, starts: dict[TopicPartition, int], stable: dict[TopicPartition, int],
    scan_limit: int = SCAN_LIMIT, timeout_s: float = SCAN_TIMEOUT_S,
) -> dict[TopicPartition, _Pending]:
    """Read each partition from its start offset up to its last stable offset (read_committed:
    markers and aborted records never come back), counting real records."""
    out = {tp: _Pending() for tp in starts}
    todo = {tp for tp, start in starts.items() if start < stable.get(tp, 0)}
    if not todo:
        return out
    consumer = cluster.consumer
    consumer.assign(sorted(todo, key=lambda tp: (tp.topic, tp.partition)))
    for tp in todo:
        consumer.seek(tp, starts[tp])
        if stable[tp] - starts[tp] > scan_limit:
            out[tp].exact = False  # only the first record is needed (its timestamp)
    deadline = time.monotonic() + timeout_s
    while todo and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=200, max_records=2000)
        for tp, records in batch.items():
            p = out[tp]
            for r in records:
                if r.offset >= stable[tp]:
                    break
                if p.first_ts is None:
                    p.first_ts = r.timestamp
                p.count += 1
        for tp in list(todo):
            done = consumer.position(tp) >= stable[tp] or (
                not out[tp].exact and out[tp].first_ts is not None)
            if done:
                consumer.pause(tp)
                todo.discard(tp)
    for tp in todo:  # ran out of time: say so rather than report a short count as exact
        out[tp].exact = False
    for tp, p in out.items():
        if not p.exact:
            p.count = max(p.count, stable.get(tp, 0) - starts[tp]) if p.first_ts else 0
    consumer.resume(*consumer.paused())
    consumer.unsubscribe()
    return out


# --- one sample -----------------------------------------------------------------------------
def sample_group(
    cluster: Cluster, settings: Settings, stage: str, scan_limit: int = SCAN_LIMIT,
) -> GroupLag:
    group = stage_group(settings, stage)
    tps = cluster.partitions(stage)
    kafka_offsets = cluster.kafka_committed(group)
    in_db = stage in DB_OFFSETS
    result = GroupLag(stage, group, len(cluster.members(group)), OK,
                      offsets_in="postgresql" if in_db else "kafka")
    if in_db:
        try:
            with connect(settings) as conn:
                committed = committed_offsets(conn, group)
        except MailroomError as exc:
            result.error = str(exc)
            return result
    else:
        committed = kafka_offsets
    ends = cluster.end_offsets(tps)
    stable = cluster.stable_offsets(tps)
    begins = cluster.beginning_offsets(tps)
    # A partition never committed is read from the earliest offset (auto_offset_reset).
    starts = {tp: max(committed.get(tp, begins[tp]), begins[tp]) for tp in tps}
    found = pending(cluster, starts, stable, scan_limit)
    now_ms = time.time() * 1000
    for tp in tps:
        c = committed.get(tp)
        p = found[tp]
        result.partitions.append(PartitionLag(
            topic=tp.topic, partition=tp.partition, committed=c, end=ends[tp],
            offset_lag=None if c is None else ends[tp] - c,
            messages_behind=p.count,
            seconds_behind=max(0.0, (now_ms - p.first_ts) / 1000) if p.first_ts else 0.0,
            exact=p.exact,
            kafka_copy=kafka_offsets.get(tp) if in_db else None,
        ))
    if in_db:
        result.copy_agrees = all(p.kafka_copy == p.committed for p in result.partitions)
    return result


def evaluate(group: GroupLag, before: GroupLag | None) -> None:
    """Set each partition's and the group's status from two samples (Burrow's rules, reduced
    to what two samples can tell)."""
    earlier = {(p.topic, p.partition): p.committed for p in (before.partitions if before else [])}
    for p in group.partitions:
        if p.messages_behind == 0:
            p.status = OK
        elif before is not None and (p.committed or -1) > (earlier.get((p.topic, p.partition))
                                                            or -1):
            p.status = LAGGING
        else:
            p.status = STALLED
    group.status = max((p.status for p in group.partitions), key=_RANK.__getitem__, default=OK)


def sample(cluster: Cluster, settings: Settings, scan_limit: int = SCAN_LIMIT) -> list[GroupLag]:
    return [sample_group(cluster, settings, stage, scan_limit)
            for stage in running_stages(settings)]


def report(
    settings: Settings, *, interval_s: float = 3.0, previous: list[GroupLag] | None = None,
    cluster: Cluster | None = None, scan_limit: int = SCAN_LIMIT,
) -> LagReport:
    """Two samples ``interval_s`` apart (or one, compared with ``previous``)."""
    own = cluster is None
    cluster = cluster or Cluster(settings)
    try:
        if previous is None:
            previous = sample(cluster, settings, scan_limit)
            time.sleep(interval_s)
        groups = sample(cluster, settings, scan_limit)
    finally:
        if own:
            cluster.close()
    before = {g.stage: g for g in previous}
    for g in groups:
        evaluate(g, before.get(g.stage))
    try:
        with connect(settings) as conn:
            boxes = mailbox_backlog(conn)
        ingest_error = ""
    except MailroomError as exc:
        boxes, ingest_error = [], str(exc)
    ingest_status = max((b.status for b in boxes), key=_RANK.__getitem__, default=OK)
    return LagReport(datetime.now(UTC), interval_s, groups, boxes, ingest_status, ingest_error)
