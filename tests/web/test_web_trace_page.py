"""An email's page tells its whole trace when persist has stored only part of it: the steps in
persist's table, and the step still only on the trace topic beyond persist's offset (the
dashboard reads the topic's end offsets once for all its viewers and skips the topic only
where persist has reached them). On the real server, broker and database."""

from __future__ import annotations

import pytest
import webseed
from kafka import TopicPartition
from pipeline_testing import read_all
from test_web_http import Client
from webseed import Running

from mailroom.codec import Codec
from mailroom.console.ops.groups import stage_group
from mailroom.db import connect
from mailroom.kafka import make_producer
from mailroom.settings import Settings
from mailroom.stage.types import Source
from mailroom.tracing import Tracer
from persist import traces

pytestmark = pytest.mark.integration


def send(settings: Settings, codec: Codec, stage: str, key: str, event: str) -> None:
    producer = make_producer(settings)
    try:
        tracer = Tracer(producer, codec, settings, stage)
        tracer.add(key, event, {"by": stage}, dedupe_key=key)
        tracer.send()
        producer.flush(30)
    finally:
        producer.close()


def test_the_email_page_shows_stored_steps_and_those_persist_has_not_reached(
        dashboard: Running, codec: Codec) -> None:
    s = dashboard.settings
    with connect(s) as db:
        seeded = webseed.activity(db, codec)
        key = seeded.dedupe_key
        send(s, codec, "unwrap", key, "unwrapped")
        send(s, codec, "route", key, "routed")
        # Persist has stored both, and its offsets are past them, in one transaction.
        placed, ends = [], {}
        for r in read_all(s, "trace"):
            placed += traces.rows_of(codec, Source.of(r))
            ends[TopicPartition(r.topic, r.partition)] = r.offset + 1
        traces.store(db, placed)
        for tp, end in ends.items():
            db.execute("INSERT INTO persist_offsets (group_id, topic, partition, next_offset, "
                       "generation) VALUES (%s, %s, %s, %s, 1)",
                       (stage_group(s, "persist"), tp.topic, tp.partition, end))
        db.commit()
    send(s, codec, "persist", key, "persisted")  # on the topic only: persist is behind now

    client = Client(dashboard.url)
    client.login(*dashboard.logins["viewer"])
    status, _, page, _ = client.request("GET", f"/emails/{seeded.activity_id}")
    assert status == 200
    trace = page.split('id="trace"', 1)[1]
    for event in ("unwrapped", "routed", "persisted"):
        assert f"<td>{event}</td>" in trace, event
    assert 'id="trace-summary">persisted<' in page
    # The case page tells the same story of its originating email.
    _, _, case_page, _ = client.request("GET", f"/cases/{seeded.case_id}")
    assert "<td>persisted</td>" in case_page and "<td>routed</td>" in case_page
