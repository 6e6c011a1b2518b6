"""Trace events on the wire: what stages write now (``trace_columns``, column by column, each
detail as JSON) reads back as the same events as the record kinds older writers sent — which
stay readable — and the partition of each event is the one Kafka's own partitioner gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from kafka.partitioner import murmur2 as kafka_murmur2

from mailroom.codec import Codec
from mailroom.errors import MalformedRecordError
from mailroom.partitioning import murmur2, partition_of
from mailroom.records import TraceBatch, TraceColumns
from mailroom.schemas import shipped_schemas_dir
from mailroom.settings import Settings
from mailroom.stage.types import Source
from mailroom.tracing import MAX_EVENTS_PER_RECORD, Tracer, events_of

PARTITIONS = [0, 1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def codec() -> Codec:
    path = shipped_schemas_dir()
    assert path is not None
    return Codec.load(path)


def test_murmur2_is_kafkas_for_every_length() -> None:
    rng = random.Random(7)
    keys = [rng.randbytes(n) for n in range(0, 80) for _ in range(20)]
    keys += ["m1.ünïcode@example.com".encode(), b"1/INBOX/1796293550/66"]
    assert [murmur2(k) for k in keys] == [kafka_murmur2(k) for k in keys]


def gather(tracer: Tracer) -> None:
    source = Source("p.unwrapped", 3, 41, b"k", b"v", 0)
    tracer.add("m1@example.com", "routed", {"01 filter": "accept: all", "why": "it's \\ \t \"q\""},
               source=source, message_id="m1@example.com", dedupe_key="m1@example.com")
    tracer.add("1/INBOX/7/9", "fetched",
               {"size": 27025, "subject": "Grüße ✉ 😀"},  # type: ignore[dict-item]
               raw_identity="1/INBOX/7/9")
    tracer.add("m1@example.com", "skipped", None)


def test_a_stages_events_read_back_as_the_events_it_gathered(codec: Codec) -> None:
    tracer = Tracer(None, codec, Settings(), "route")
    before = datetime.now(UTC).replace(microsecond=0)
    gather(tracer)
    records = tracer.records(PARTITIONS)
    assert tracer.records(PARTITIONS) == []  # sent once
    events = {}
    for partition, key, value in records:
        assert isinstance(codec.decode_any(value), TraceColumns)
        assert key == events_of(codec, value)[0].key.encode()  # the record's key: its first
        for e in events_of(codec, value):
            assert partition_of(e.key.encode(), PARTITIONS) == partition
            events.setdefault(e.key, []).append(e)
    first, second = events["m1@example.com"]
    assert (first.event, second.event) == ("routed", "skipped")  # in the order gathered
    assert first.detail == {"01 filter": "accept: all", "why": "it's \\ \t \"q\""}
    assert (first.source_topic, first.source_partition, first.source_offset) == (
        "p.unwrapped", 3, 41)
    assert first.stage == "route" and first.message_id == first.dedupe_key == "m1@example.com"
    assert second.detail == {} and second.source_topic is None
    [fetched] = events["1/INBOX/7/9"]
    # Values are made strings, as a TraceEvent makes them; any text travels.
    assert fetched.detail == {"size": "27025", "subject": "Grüße ✉ 😀"}
    assert fetched.raw_identity == "1/INBOX/7/9" and fetched.at >= before


def test_events_of_another_stage_are_written_under_its_name(codec: Codec) -> None:
    """A process running two stages' handlers (unwrap+route) traces each event as the stage
    that decided it, in records of its own."""
    tracer = Tracer(None, codec, Settings(), "unwrap")
    tracer.add("m1@example.com", "unwrapped")
    tracer.add("m1@example.com", "routed", stage="route")
    tracer.add("m2@example.com", "unwrapped", stage=None)
    records = tracer.records(PARTITIONS)
    stages = {(e.key, e.event): e.stage for _, _, v in records for e in events_of(codec, v)}
    assert stages == {("m1@example.com", "unwrapped"): "unwrap",
                      ("m1@example.com", "routed"): "route",
                      ("m2@example.com", "unwrapped"): "unwrap"}
    assert all(len({e.stage for e in events_of(codec, v)}) == 1 for _, _, v in records)


def test_records_hold_at_most_the_limit_of_events(codec: Codec) -> None:
    tracer = Tracer(None, codec, Settings(), "route")
    for _ in range(MAX_EVENTS_PER_RECORD + 3):
        tracer.add("same@example.com", "routed")
    records = tracer.records(PARTITIONS)
    assert [len(events_of(codec, v)) for _, _, v in records] == [MAX_EVENTS_PER_RECORD, 3]


def test_older_record_kinds_read_as_the_same_events(codec: Codec) -> None:
    tracer = Tracer(None, codec, Settings(), "route")
    gather(tracer)
    new = [e for _, _, v in tracer.records(PARTITIONS) for e in events_of(codec, v)]
    assert len(new) == 3
    as_batch = codec.encode_record(TraceBatch(tuple(new)))
    assert events_of(codec, as_batch) == new
    assert [events_of(codec, codec.encode_record(e)) for e in new] == [[e] for e in new]


def columns(**changes: object) -> TraceColumns:
    at = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    fields: dict[str, object] = dict(
        stage="route", keys=("a", "b"), events=("routed", "routed"), at=(at, at),
        message_ids=(None, None), dedupe_keys=(None, None), raw_identities=(None, None),
        source_topics=(None, None), source_partitions=(None, None), source_offsets=(None, None),
        details=("{}", '{"x": "y"}'))
    fields.update(changes)
    return TraceColumns(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [
    {"keys": ("a",)},  # a column short of an event
    {"details": ("{}",)},
    {"details": ("{}", "not json")},
    {"details": ("{}", '["a list"]')},
    {"details": ("{}", '{"n": 3}')},  # values are strings
])
def test_columns_that_disagree_are_poison(codec: Codec, bad: dict[str, object]) -> None:
    assert len(events_of(codec, codec.encode_record(columns()))) == 2
    with pytest.raises(MalformedRecordError):
        events_of(codec, codec.encode_record(columns(**bad)))
