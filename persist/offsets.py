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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from kafka import ConsumerRebalanceListener, TopicPartition

from mailroom.db.outage import LOST
from mailroom.errors import TransientError

log = logging.getLogger(__name__)


class Fenced(TransientError):  # noqa: N818 - the name says what happened
    """Another process owns these partitions now; this batch must not commit."""


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
