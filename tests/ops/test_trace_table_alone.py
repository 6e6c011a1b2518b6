"""A story persist has stored whole is told from its table alone: given the trace topic's end
offsets (the dashboard reads them once for every viewer) and persist's offsets at them, `mailroom
trace` reads neither the trace topic nor the raw record ingest's own event already tells — so it
needs no broker at all. The topic is still read where persist is behind. On the real broker and
database; "no broker" is a closed port on this machine."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from kafka import TopicPartition
from pipeline_testing import read_all

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.console.ops.groups import stage_group
from mailroom.console.ops.trace import Tracer
from mailroom.db import connect
from mailroom.records.raw import RawMail
from mailroom.settings import Settings
from mailroom.stage.types import Source
from mailroom.tracing import Tracer as Emitter
from persist import traces

pytestmark = pytest.mark.integration

KEY = "m1@example.com"
RAW = "7/INBOX/1/42"


def journey(s: Settings, codec: Codec) -> None:
    """One email's raw record and its ingest, unwrap and route events, as the stages send them."""
    producer = kafka.make_producer(s)
    try:
        raw = RawMail(mailbox_id="7", mailbox_address="box@acme.example", owner_kind="queue",
                      folder="INBOX", direction="incoming", protocol="imap",
                      fetched_at=datetime.now(UTC), size=5, uidvalidity=1, uid=42,
                      content=b"hello")
        meta = producer.send(s.topic("raw"), key=raw.identity.encode(),
                             value=codec.encode_record(raw)).get(timeout=30)
        source = Source(meta.topic, meta.partition, meta.offset, raw.identity.encode(), None, 0)
        emitters = [Emitter(producer, codec, s, stage) for stage in ("ingest", "unwrap", "route")]
        emitters[0].add(RAW, "fetched", {"mailbox": "box@acme.example"}, raw_identity=RAW)
        emitters[1].add(KEY, "unwrapped", {}, source=source, message_id=KEY, dedupe_key=KEY,
                        raw_identity=RAW)
        emitters[2].add(KEY, "routed", {}, message_id=KEY, dedupe_key=KEY)
        for emitter in emitters:
            emitter.send()
        producer.flush(30)
    finally:
        producer.close()


def store_as_persist(s: Settings, codec: Codec, conn: object) -> dict[TopicPartition, int]:
    """Every trace record into ``message_traces`` and persist's offsets past them, as persist
    commits them; returns the topic's end offsets."""
    placed, ends = [], {TopicPartition(s.topic("trace"), p): 0
                        for p in range(s.topic_partitions)}
    for r in read_all(s, "trace"):
        placed += traces.rows_of(codec, Source.of(r))
        tp = TopicPartition(r.topic, r.partition)
        ends[tp] = max(ends[tp], r.offset + 1)
    traces.store(conn, placed)  # type: ignore[arg-type]
    for tp, end in ends.items():
        conn.execute(  # type: ignore[attr-defined]
            "INSERT INTO persist_offsets (group_id, topic, partition, next_offset, generation) "
            "VALUES (%s, %s, %s, %s, 1)", (stage_group(s, "persist"), tp.topic, tp.partition, end))
    conn.commit()  # type: ignore[attr-defined]
    return ends


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_story_persist_has_stored_whole_needs_no_broker(ops_settings: Settings) -> None:
    s = ops_settings
    codec = Codec.from_settings(s)
    journey(s, codec)
    with connect(s) as conn:
        ends = store_as_persist(s, codec, conn)
        nowhere = s.replace(kafka_bootstrap=f"127.0.0.1:{closed_port()}",
                            kafka_request_timeout_ms=3000)
        teller = Tracer(nowhere, codec)
        try:
            steps = teller.story(f"<{KEY}>", conn, ends)
        finally:
            teller.close()
    # Linked through the raw identity as ever; the fetch told by ingest's own event (the
    # three were sent within a millisecond: their order is the topic's, not the stages').
    assert sorted((x.stage, x.event) for x in steps) == [
        ("ingest", "fetched"), ("route", "routed"), ("unwrap", "unwrapped")]
    assert all(x.where.startswith(s.topic("trace")) for x in steps)


def test_where_persist_is_behind_the_topic_is_still_read(ops_settings: Settings) -> None:
    s = ops_settings
    codec = Codec.from_settings(s)
    journey(s, codec)
    with connect(s) as conn:
        store_as_persist(s, codec, conn)
        # A step persist has not stored yet: beyond its offset on the key's partition.
        producer = kafka.make_producer(s)
        try:
            emitter = Emitter(producer, codec, s, "persist")
            emitter.add(KEY, "persisted", {}, dedupe_key=KEY)
            emitter.send()
            producer.flush(30)
        finally:
            producer.close()
        teller = Tracer(s, codec)
        try:
            steps = teller.story(KEY, conn, teller.trace_ends())
        finally:
            teller.close()
    assert sorted(x.event for x in steps) == ["fetched", "persisted", "routed", "unwrapped"]
