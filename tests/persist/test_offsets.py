"""Offsets in PostgreSQL: claims take a fresh fence token; a stale owner cannot move them."""

from __future__ import annotations

import psycopg
import pytest
from kafka import TopicPartition

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
