"""Persist's consumer offsets, in PostgreSQL, in the same transaction as the effects.

Exactly-once effects: a batch's rows and the offset past it commit together, so after any
crash the stage resumes exactly where its last committed effects end. On assignment the
consumer seeks to the stored offsets; Kafka's committed offsets are only a copy, written after
the database commit so ``kafka-consumer-groups`` and ``mailroom lag`` see the stage.

Fencing: each assignment takes a fresh token from the ``persist_fence_tokens`` sequence and
claims its partitions with it (a row's token only ever grows). An offset write carries the
token it was claimed with and is refused when the row holds a newer one — a process that lost
its partitions (evicted while stalled, say) cannot move them back, and its whole batch rolls
back. Kafka's generation id is stored beside it for the record; it is not the fence because it
restarts from 1 when a group is deleted.

:class:`PostgresCommit` is all of this as the stage runner's commit strategy
(:mod:`mailroom.stage.commit`): each unit of the runner — persist's whole poll batch, or one
suspect record — is one transaction holding its effects and the offsets past them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError

from mailroom import faults
from mailroom.db.outage import LOST, renewed
from mailroom.errors import Fenced
from mailroom.settings import Settings
from mailroom.stage.commit import Batch, as_kafka, seek_to_first

log = logging.getLogger(__name__)

__all__ = ["Fenced", "Keeper", "PostgresCommit", "claim", "committed_offsets", "replace_offsets",
           "store", "stored_offsets"]

AFTER_APPLY = faults.register(
    "persist:after_apply_before_commit", "batch applied in the transaction, not committed")
AFTER_DB_COMMIT = faults.register(
    "persist:after_db_commit_before_kafka_commit",
    "records and offsets committed in PostgreSQL, offsets not yet committed to Kafka")


def claim(
    conn: psycopg.Connection, group: str, partitions: list[TopicPartition], kafka_generation: int
) -> tuple[int, dict[TopicPartition, int | None]]:
    """Claim ``partitions`` with a new fence token; returns it and the stored offsets."""
    with conn.transaction():
        row = conn.execute("SELECT nextval('persist_fence_tokens')").fetchone()
        assert row is not None
        token = int(row[0])
        stored: dict[TopicPartition, int | None] = {}
        for tp in partitions:
            got = conn.execute(
                "INSERT INTO persist_offsets (group_id, topic, partition, generation, "
                "kafka_generation) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (group_id, topic, partition) DO UPDATE "
                "SET generation = excluded.generation, kafka_generation = "
                "excluded.kafka_generation, updated_at = now() "
                "WHERE persist_offsets.generation < excluded.generation RETURNING next_offset",
                (group, tp.topic, tp.partition, token, kafka_generation),
            ).fetchone()
            stored[tp] = got[0] if got else None
    return token, stored


def store(
    conn: psycopg.Connection, group: str, offsets: Mapping[TopicPartition, int],
    tokens: Mapping[TopicPartition, int],
) -> None:
    """Write the next offsets inside the caller's transaction; raise :class:`Fenced` if any
    partition was claimed by a newer assignment (the caller's transaction must roll back)."""
    if not offsets:
        return
    tps = list(offsets)
    missing = [tp for tp in tps if tp not in tokens]
    if missing:
        raise Fenced(f"no claim on {missing}: the partitions were revoked")
    cur = conn.execute(
        "UPDATE persist_offsets o SET next_offset = v.off, updated_at = now() "
        "FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[]) "
        "     AS v(topic, part, off, gen) "
        "WHERE o.group_id = %s AND o.topic = v.topic AND o.partition = v.part "
        "AND o.generation = v.gen",
        ([tp.topic for tp in tps], [tp.partition for tp in tps], [offsets[tp] for tp in tps],
         [tokens[tp] for tp in tps], group),
    )
    if cur.rowcount != len(tps):
        raise Fenced(f"group {group}: {len(tps) - cur.rowcount} of {len(tps)} partitions "
                     "were claimed by a newer assignment; this batch is rolled back")


def stored_offsets(conn: psycopg.Connection, group: str) -> dict[tuple[str, int], int | None]:
    rows = conn.execute(
        "SELECT topic, partition, next_offset FROM persist_offsets WHERE group_id = %s",
        (group,),
    ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def committed_offsets(conn: psycopg.Connection, group: str) -> dict[TopicPartition, int]:
    """The offsets of record of ``group`` (what ``mailroom lag``, ``trace`` and ``replay``
    read); a claimed row with no offset yet is left out, as Kafka leaves out a partition never
    committed."""
    rows = conn.execute(
        "SELECT topic, partition, next_offset FROM persist_offsets "
        "WHERE group_id = %s AND next_offset IS NOT NULL", (group,),
    ).fetchall()
    return {TopicPartition(r[0], int(r[1])): int(r[2]) for r in rows}


def replace_offsets(conn: psycopg.Connection, group: str,
                    offsets: Mapping[TopicPartition, int]) -> int:
    """Set ``group``'s offsets (a replay, ``mailroom replay``) under a new fence token, inside
    the caller's transaction; returns the token. Any older claim can no longer store an offset:
    a persist process somehow still holding the partitions has its batch rolled back."""
    row = conn.execute("SELECT nextval('persist_fence_tokens')").fetchone()
    assert row is not None
    token = int(row[0])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO persist_offsets (group_id, topic, partition, next_offset, generation) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (group_id, topic, partition) DO UPDATE "
            "SET next_offset = excluded.next_offset, generation = excluded.generation, "
            "updated_at = now()",
            [(group, tp.topic, tp.partition, offset, token) for tp, offset in offsets.items()],
        )
    return token


class Keeper(ConsumerRebalanceListener):
    """Claims assigned partitions and seeks the consumer to the stored offsets.

    An assignment that arrives while PostgreSQL is away cannot be claimed in the callback (and
    an exception there would end ``poll`` with a KafkaError): those partitions are kept in
    ``unclaimed`` and claimed by :meth:`claim_unclaimed` once the database answers.
    """

    def __init__(self, conn: psycopg.Connection, consumer: Any, group: str) -> None:
        self.conn = conn
        self.consumer = consumer
        self.group = group
        self.tokens: dict[TopicPartition, int] = {}
        self.unclaimed: set[TopicPartition] = set()

    def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self.tokens.pop(tp, None)
            self.unclaimed.discard(tp)

    def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            self._claim(assigned)
        except LOST as exc:
            self.unclaimed.update(assigned)
            log.warning("partitions %s not claimed yet (%s): claimed when PostgreSQL is back",
                        sorted(str(tp) for tp in assigned), str(exc).strip())

    def claim_unclaimed(self) -> set[TopicPartition]:
        """Claim what an outage left unclaimed (still assigned); returns the partitions sought
        to an offset stored in PostgreSQL (a partition claimed for the first time has none)."""
        pending = self.unclaimed & set(self.consumer.assignment())
        sought = self._claim(pending)
        self.unclaimed.clear()
        return sought

    def _claim(self, assigned: Any) -> set[TopicPartition]:
        """Claim ``assigned``; returns those sought to their stored offsets."""
        tps = sorted(assigned, key=lambda tp: (tp.topic, tp.partition))
        if not tps:
            return set()
        try:
            generation = int(self.consumer.group_metadata().generation_id)
        except Exception:  # noqa: BLE001 - only recorded for information
            generation = -1
        token, stored = claim(self.conn, self.group, tps, generation)
        sought = set()
        for tp in tps:
            self.tokens[tp] = token
            if stored[tp] is not None:
                self.consumer.seek(tp, stored[tp])
                sought.add(tp)
        log.info("claimed %d partitions with fence token %d (kafka generation %d)",
                 len(tps), token, generation)
        return sought


class PostgresCommit:
    """Persist's commit strategy: a unit is one PostgreSQL transaction; its offsets are written
    in it, fenced by the claim token, after the broker acknowledged the unit's dead letters and
    trace events; only after the commit are they copied to Kafka. On assignment (``listener``)
    the partitions are claimed and sought to the offsets stored here.

    ``connect`` reopens ``conn`` after an outage (None: never); the batch handler reads
    :attr:`conn` for every unit, so it always writes on the connection of now.
    """

    def __init__(self, conn: psycopg.Connection, consumer: Any, group: str, settings: Settings,
                 connect: Callable[[], psycopg.Connection] | None = None) -> None:
        self.conn = conn
        self.consumer = consumer
        self.group = group
        self.settings = settings
        self.connect = connect
        self.keeper = Keeper(conn, consumer, group)
        self.listener = self.keeper

    def ready(self, batch: Batch) -> bool:
        """Partitions assigned while PostgreSQL was away are claimed now (which seeks those with
        a stored offset to it); then the next poll brings every partition's records again — a
        partition without a stored offset too, or the batch in hand would be skipped (its
        position is already past it)."""
        if not self.keeper.unclaimed:
            return True
        sought = self.keeper.claim_unclaimed()
        assigned = self.consumer.assignment()
        for tp, records in batch.items():
            if records and tp not in sought and tp in assigned:
                self.consumer.seek(tp, records[0].offset)
        return False

    def transaction(self) -> AbstractContextManager[Any]:
        return self.conn.transaction()

    def store(self, offsets: Mapping[TopicPartition, int], handled: bool) -> None:
        store(self.conn, self.group, offsets, self.keeper.tokens)
        if handled:  # plans applied (not only trace events stored, or a crash loop's letter)
            faults.point(self.settings, AFTER_APPLY)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        faults.point(self.settings, AFTER_DB_COMMIT)
        if not offsets:
            return
        try:
            self.consumer.commit(as_kafka(offsets))
        except KafkaError as exc:  # a copy only: PostgreSQL has the offsets
            log.warning("committing the offsets' copy to Kafka failed: %s", exc)

    def rewind(self, batch: Batch, paused: Collection[tuple[str, int]]) -> None:
        """Reopen the connection and seek to the offsets stored here, whether the last commit
        landed or not; to the batch's first offsets while PostgreSQL is still away."""
        stored: dict[tuple[str, int], int | None] = {}
        if self.connect is not None:
            try:
                self.conn = renewed(self.conn, self.connect)
                self.keeper.conn = self.conn
                stored = stored_offsets(self.conn, self.group)
                self.conn.commit()
            except LOST:
                stored = {}  # still away: the batch's first offsets, and wait again
        seek_to_first(self.consumer, batch, paused, stored)
