"""Trace events travel in batches: a stage's events go out as one record per trace partition
their keys fall in, so a message's events are still all in the partition of its key, and
`mailroom trace` and persist read every event of a batch — each in its own place. On the real
broker and database."""

from __future__ import annotations

import pytest
from pipeline_testing import read_all

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.console.ops.trace import Tracer as StoryTeller
from mailroom.db import connect
from mailroom.records import TraceColumns
from mailroom.settings import Settings
from mailroom.stage.types import Source
from mailroom.tracing import Tracer, events_of, partition_of
from persist import traces

pytestmark = pytest.mark.integration

KEYS = [f"m{n}@example.com" for n in range(12)]


def send_batch(s: Settings) -> None:
    producer = kafka.make_producer(s)
    try:
        tracer = Tracer(producer, Codec.from_settings(s), s, "route")
        for key in KEYS:
            tracer.add(key, "routed", {"n": key[1:].split("@")[0]}, dedupe_key=key)
        tracer.add(KEYS[0], "skipped", {"reason": "second event of one key"})
        tracer.send()
        producer.flush()
    finally:
        producer.close()


def test_one_record_per_partition_each_event_in_its_keys_partition(ops_settings: Settings) -> None:
    s = ops_settings
    send_batch(s)
    codec = Codec.from_settings(s)
    records = read_all(s, "trace")
    partitions = list(range(s.topic_partitions))
    # Twelve keys over two partitions: two records, not thirteen.
    assert sorted(r.partition for r in records) == partitions
    seen = []
    for r in records:
        assert isinstance(codec.decode_any(r.value), TraceColumns)
        for event in events_of(codec, r.value):
            assert partition_of(event.key.encode(), partitions) == r.partition
            seen.append((event.key, event.event))
    assert sorted(seen) == sorted([(k, "routed") for k in KEYS] + [(KEYS[0], "skipped")])
    # A message's events keep the order the stage emitted them in.
    first = [e.event for r in records for e in events_of(codec, r.value) if e.key == KEYS[0]]
    assert first == ["routed", "skipped"]


def test_trace_and_persist_read_each_event_of_a_batch(ops_settings: Settings) -> None:
    s = ops_settings
    send_batch(s)
    codec = Codec.from_settings(s)
    teller = StoryTeller(s, codec)
    try:
        # From the topic: only the asked message's events, each at its own place.
        steps = teller.story(KEYS[0])
        assert [x.event for x in steps] == ["routed", "skipped"]
        assert len({x.where for x in steps}) == 2
        assert all(x.key == KEYS[0] for x in steps)
        # Into the table as persist stores them, then from the table alone.
        placed = []
        for r in read_all(s, "trace"):
            placed += traces.rows_of(codec, Source.of(r))
        with connect(s) as conn:
            assert traces.store(conn, placed) == len(KEYS) + 1
            assert traces.store(conn, placed) == 0  # a redelivered batch adds nothing
            conn.commit()
            assert [e.event for e in teller.from_table(conn, {KEYS[3]}).values()] == ["routed"]
            # The same places as the topic gave: the two sources merge, nothing twice.
            assert set(teller.from_table(conn, {KEYS[0]})) == {x.where for x in steps}
    finally:
        teller.close()
