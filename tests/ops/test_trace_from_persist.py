"""`mailroom trace` reads the trace topic only from persist's offset of record on: what lies
before it is persist's table's to tell (the dashboard tells a story per email page, and the
topic from its beginning is the whole retention every time). On the real broker and database:
an event persist passed without keeping a row (erased mail) is not read back from the topic,
one persist has not reached yet is; with no offset of persist's the topic is read whole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pipeline_testing import produce

from mailroom.codec import Codec
from mailroom.console.ops.groups import stage_group
from mailroom.console.ops.trace import Tracer
from mailroom.db import connect
from mailroom.records import TraceEvent
from mailroom.settings import Settings
from mailroom.tracing import partition_of

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def events(settings: Settings, key: str, *names: str) -> int:
    """Trace events ``names`` under ``key``, in order on its partition; returns the partition."""
    codec = Codec.from_settings(settings)
    partition = partition_of(key.encode(), list(range(settings.topic_partitions)))
    produce(settings, settings.topic("trace"), [
        (key.encode(), codec.encode_record(TraceEvent(key=key, stage="route", event=name, at=AT)))
        for name in names], partition=partition)
    return partition


def test_the_topic_is_read_from_persists_offset(ops_settings: Settings) -> None:
    s = ops_settings
    passed = events(s, "m1@example.com", "erased-before", "kept-after")
    with connect(s) as conn:  # persist read the first and kept no row of it
        conn.execute("INSERT INTO persist_offsets (group_id, topic, partition, next_offset, "
                     "generation) VALUES (%s, %s, %s, 1, 1)",
                     (stage_group(s, "persist"), s.topic("trace"), passed))
        conn.commit()
    tracer = Tracer(s, Codec.from_settings(s))
    try:
        steps = tracer.story("<m1@example.com>")
        assert [(x.event, x.where) for x in steps] == [
            ("kept-after", f"{s.topic('trace')}/{passed}@1")]
        # Another partition persist never read: the topic from its beginning.
        other = next(f"m{n}@example.com" for n in range(2, 100)
                     if partition_of(f"m{n}@example.com".encode(),
                                     list(range(s.topic_partitions))) != passed)
        events(s, other, "first", "second")
        assert [x.event for x in tracer.story(other)] == ["first", "second"]
    finally:
        tracer.close()
