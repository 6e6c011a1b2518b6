"""message_traces by COPY (persist/traces.py): every event stored once, also when a batch is
delivered again, and nothing left behind by a rolled-back batch."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from mailroom.records import TraceEvent
from mailroom.stage.types import Source
from persist import traces

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def events(n: int, first: int = 0) -> list[traces.Placed]:
    return [(Source("t.trace", 0, i, b"k", b"", 0), 0,
             TraceEvent(key=f"m{i}@x", stage="route", event="routed", at=AT,
                        message_id=f"m{i}@x", detail={"why": f"rule {i}", "quote": "it's \\ \t"}))
            for i in range(first, first + n)]


def test_copy_stores_each_event_once(db: psycopg.Connection) -> None:
    with db.transaction():
        assert traces.store(db, events(50)) == 50
        assert traces.store(db, events(10, 45)) == 5  # a second call in one transaction
    with db.transaction():
        assert traces.store(db, events(55)) == 0  # the batches came again
    rows = db.execute("SELECT count(*), min(detail->>'quote'), max(topic_offset) "
                      "FROM message_traces").fetchone()
    assert rows == (55, "it's \\ \t", 54)


def test_the_events_of_one_record_each_have_a_place(db: psycopg.Connection) -> None:
    # One trace record carries a stage's batch of events: same coordinates, own positions.
    one_record = [(source, n, event) for n, (source, _, event)
                  in enumerate((Source("t.trace", 0, 7, b"k", b"", 0), 0, e)
                               for _, _, e in events(4))]
    with db.transaction():
        assert traces.store(db, one_record) == 4
        assert traces.store(db, one_record) == 0  # delivered again
    assert db.execute("SELECT array_agg(topic_index ORDER BY topic_index) FROM message_traces "
                      "WHERE topic_offset = 7").fetchone() == ([0, 1, 2, 3],)


def test_a_rolled_back_batch_leaves_nothing(db: psycopg.Connection) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        traces.store(db, events(5))
        raise RuntimeError("the batch failed")
    with db.transaction():
        assert traces.store(db, events(3)) == 3
    assert db.execute("SELECT count(*) FROM message_traces").fetchone() == (3,)


def test_a_trace_is_looked_up_by_index_whatever_it_is_named_by(db: psycopg.Connection) -> None:
    # mailroom trace and the dashboard ask by key, Message-ID, dedupe key or raw identity, and
    # the dead-letters page for the 'retried' events: the table outlives the topic and only
    # grows, so none of these may read it whole.
    db.execute("SET LOCAL enable_seqscan = off")
    story = "\n".join(r[0] for r in db.execute(
        "EXPLAIN SELECT topic FROM message_traces WHERE key = ANY(%(n)s) "
        "OR message_id = ANY(%(n)s) OR dedupe_key = ANY(%(n)s) OR raw_identity = ANY(%(n)s)",
        {"n": ["m1@x"]}))
    assert "Seq Scan" not in story and "message_traces_raw_identity" in story
    retried = "\n".join(r[0] for r in db.execute(
        "EXPLAIN SELECT detail->>'dead_letter', max(at) FROM message_traces "
        "WHERE event = 'retried' AND detail->>'dead_letter' LIKE 'x.dlq/%' GROUP BY 1"))
    assert "Seq Scan" not in retried
