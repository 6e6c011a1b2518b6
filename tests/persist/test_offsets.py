"""Offsets in PostgreSQL: claims take a fresh fence token; a stale owner cannot move them."""

from __future__ import annotations

import psycopg
import pytest
from kafka import TopicPartition

from mailroom.settings import Settings
from persist import offsets

pytestmark = pytest.mark.integration

TP0, TP1 = TopicPartition("t.actions", 0), TopicPartition("t.actions", 1)


def test_claim_then_store_then_reclaim_returns_the_offsets(db: psycopg.Connection) -> None:
    token, stored = offsets.claim(db, "g", [TP0, TP1], 3)
    assert stored == {TP0: None, TP1: None}
    with db.transaction():
        offsets.store(db, "g", {TP0: 10, TP1: 7}, {TP0: token, TP1: token})
    newer, stored = offsets.claim(db, "g", [TP0], 4)
    assert newer > token and stored == {TP0: 10}


def test_a_stale_owner_is_fenced_and_its_batch_rolls_back(db: psycopg.Connection) -> None:
    old, _ = offsets.claim(db, "g", [TP0], 1)
    new, _ = offsets.claim(db, "g", [TP0], 2)  # another process took the partition
    with db.transaction():
        offsets.store(db, "g", {TP0: 5}, {TP0: new})
    with pytest.raises(offsets.Fenced), db.transaction():
        db.execute("INSERT INTO queues (id, name) VALUES ('stale', 'written by the stale one')")
        offsets.store(db, "g", {TP0: 99}, {TP0: old})
    assert offsets.stored_offsets(db, "g") == {("t.actions", 0): 5}
    assert db.execute("SELECT count(*) FROM queues WHERE id = 'stale'").fetchone() == (0,)


class _Positions:
    """The consumer's side of a claim: what is assigned, and where each partition is sought."""

    def __init__(self, assigned: list[TopicPartition]) -> None:
        self.assigned = set(assigned)
        self.sought: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought[tp] = offset

    def group_metadata(self) -> None:
        raise RuntimeError("not in a group")  # the generation is only recorded


def test_claim_after_an_outage_sends_back_partitions_with_no_stored_offset(
    db: psycopg.Connection,
) -> None:
    # Assigned while PostgreSQL was away, claimed with the first batch polled after it: TP0 has
    # a stored offset, TP1 none yet. Both must come again, or TP1's batch is skipped for good.
    token, _ = offsets.claim(db, "g", [TP0], 1)
    with db.transaction():
        offsets.store(db, "g", {TP0: 10}, {TP0: token})
    consumer = _Positions([TP0, TP1])
    keeper = offsets.Keeper(db, consumer, "g")
    keeper.unclaimed = {TP0, TP1}
    assert keeper.claim_unclaimed() == {TP0}
    assert consumer.sought == {TP0: 10}
    assert keeper.tokens.keys() == {TP0, TP1} and not keeper.unclaimed


def test_the_batch_polled_with_the_claim_comes_again_whole(
    db: psycopg.Connection, persist_settings: Settings,
) -> None:
    from types import SimpleNamespace

    from mailroom.codec import Codec
    from persist.stage import PersistStage

    settings = persist_settings
    consumer = _Positions([TP0, TP1])
    stage = PersistStage(settings, consumer=consumer, producer=None, conn=db,
                         codec=Codec.from_settings(settings))
    stage.keeper.group = "g"
    token, _ = offsets.claim(db, "g", [TP0], 1)
    with db.transaction():
        offsets.store(db, "g", {TP0: 10}, {TP0: token})
    stage.keeper.unclaimed = {TP0, TP1}
    batch = {TP0: [SimpleNamespace(offset=10)], TP1: [SimpleNamespace(offset=0),
                                                      SimpleNamespace(offset=1)]}
    try:
        stage.process(batch)  # claims, applies nothing
    finally:
        stage.attempts.conn.close()
    assert consumer.sought == {TP0: 10, TP1: 0}
