"""message_traces by COPY (persist/traces.py): every event stored once, also when a batch is
delivered again, and nothing left behind by a rolled-back batch."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import psycopg
import pytest

from mailroom.codec import Codec
from mailroom.errors import MalformedRecordError
from mailroom.records import TraceBatch, TraceColumns, TraceEvent
from mailroom.settings import Settings
from mailroom.stage.types import Source
from mailroom.tracing import Tracer
from persist import traces

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def events(n: int, first: int = 0) -> list[traces.TraceRow]:
    return [traces.row_of(Source("t.trace", 0, i, b"k", b"", 0), 0,
                          TraceEvent(key=f"m{i}@x", stage="route", event="routed", at=AT,
                                     message_id=f"m{i}@x",
                                     detail={"why": f"rule {i}", "quote": "it's \\ \t"}))
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
    one_record = [row._replace(topic_offset=7, topic_index=n)
                  for n, row in enumerate(events(4))]
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
        "EXPLAIN SELECT topic FROM message_traces WHERE " + traces.named("n"), {"n": ["m1@x"]}))
    assert "Seq Scan" not in story
    for index in ("key", "message_id", "dedupe_key", "raw_identity"):
        assert f"message_traces_{index} " in story + " "
    retried = "\n".join(r[0] for r in db.execute(
        "EXPLAIN SELECT detail->>'dead_letter', max(at) FROM message_traces "
        "WHERE event = 'retried' AND detail->>'dead_letter' LIKE 'x.dlq/%' GROUP BY 1"))
    assert "Seq Scan" not in retried


def emitted(codec: Codec, details: list[dict[str, str]]) -> list[tuple[Source, bytes]]:
    """A stage's trace records of one event per detail (as the stage sends them)."""
    tracer = Tracer(None, codec, Settings(), "unwrap")
    for n, detail in enumerate(details):
        tracer.add(f"m{n}@x", "unwrapped", detail, message_id=f"m{n}@x", dedupe_key=f"m{n}@x",
                   raw_identity="1/INBOX/1/1", source=Source("t.raw", 2, 9, b"", b"", 0))
    return [(Source("t.trace", partition, 70 + partition, key, value, 0), value)
            for partition, key, value in tracer.records([0, 1])]


def test_rows_are_the_same_from_every_record_kind(codec: Codec) -> None:
    # Persist copies a columns record's values to its rows without an event in between; an
    # older writer's batch, or single event, of the same events gives the same rows.
    details = [{"why": "it's \\ \t \"q\"", "subject": "Grüße 😀"}, {}, {"n": "1"}]
    seen = []
    for source, value in emitted(codec, details):
        rows = traces.rows_of(codec, source)
        events = TraceColumns.from_avro(codec.decode(value)[1]).trace_events()
        batch = dataclasses.replace(source, value=codec.encode_record(TraceBatch(tuple(events))))
        assert [r._replace(detail=json.loads(r.detail)) for r in rows] == [
            r._replace(detail=json.loads(r.detail)) for r in traces.rows_of(codec, batch)]
        one = dataclasses.replace(source, value=codec.encode_record(events[0]))
        assert [r._replace(detail=json.loads(r.detail)) for r in traces.rows_of(codec, one)] == [
            rows[0]._replace(detail=json.loads(rows[0].detail))]
        assert [r.topic_index for r in rows] == list(range(len(rows)))
        assert all(r.stage == "unwrap" and r.source_topic == "t.raw" for r in rows)
        seen += [json.loads(r.detail) for r in rows]
    assert sorted(seen, key=str) == sorted(details, key=str)


def test_a_detail_jsonb_refuses_is_stored_with_replacement_characters(
        db: psycopg.Connection, codec: Codec) -> None:
    # JSON may carry NUL and a lone surrogate; jsonb refuses both, which would fail the batch.
    [(source, _)] = emitted(codec, [{"reason": "bad\x00byte \ud800 here", "ok": "fine"}])
    with db.transaction():
        assert traces.store(db, traces.rows_of(codec, source)) == 1
    assert db.execute("SELECT detail FROM message_traces").fetchone() == (
        {"reason": "bad\ufffdbyte \ufffd here", "ok": "fine"},)


def test_a_columns_record_that_disagrees_is_poison(codec: Codec) -> None:
    [(source, value)] = emitted(codec, [{"a": "b"}])
    good = TraceColumns.from_avro(codec.decode(value)[1])
    for bad in (dataclasses.replace(good, keys=good.keys * 2),
                dataclasses.replace(good, details=("[1, 2]",)),
                dataclasses.replace(good, details=('{"n": 1}',))):
        with pytest.raises(MalformedRecordError):
            traces.rows_of(codec, Source(source.topic, 0, 1, b"", codec.encode_record(bad), 0))


def test_an_identifier_names_the_same_rows_with_indexes_past_the_key(
        db: psycopg.Connection) -> None:
    # The Message-ID, dedupe key and raw identity indexes leave out the rows where the value is
    # the key (most rows: the key is the dedupe key, or the raw identity before unwrap) — the
    # key's index has them. A look-up still finds every row any of the four names.
    shapes = [dict(key="r1", raw_identity="r1"),  # ingest's event
              dict(key="m1", message_id="m1", dedupe_key="m1", raw_identity="r1"),  # unwrap's
              dict(key="m1", dedupe_key="m1"),  # persist's
              dict(key="k2", message_id="other@x", dedupe_key="k3"),  # values unlike the key
              dict(key="r4")]
    rows = [traces.row_of(Source("t.trace", 0, n, b"", b"", 0), 0,
                          TraceEvent(stage="s", event="e", at=AT, **shape))  # type: ignore[arg-type]
            for n, shape in enumerate(shapes)]
    with db.transaction():
        traces.store(db, rows)
    every_column = ("key = ANY(%(n)s) OR message_id = ANY(%(n)s) OR dedupe_key = ANY(%(n)s) "
                    "OR raw_identity = ANY(%(n)s)")
    for names in (["r1"], ["m1"], ["other@x"], ["k3"], ["k2"], ["r4", "m1"], ["nothing"]):
        def found(condition: str, names: list[str] = names) -> list[int]:
            return [r[0] for r in db.execute("SELECT topic_offset FROM message_traces WHERE "
                                              + condition + " ORDER BY 1", {"n": names})]
        assert found(traces.named("n")) == found(every_column), names
    assert found(traces.named("n"), ["r1"]) == [0, 1]
    partial = {r[0]: r[1] for r in db.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'message_traces' "
        "AND schemaname = current_schema()")}
    for column in ("message_id", "dedupe_key", "raw_identity"):
        assert partial[f"message_traces_{column}"].endswith(f"WHERE ({column} <> key)")
