"""The change feed: the outbox filled in persist's transactions, the relay publishing it to the
compacted records topic — a consumer that reads only the topic rebuilds the activities
PostgreSQL holds; a crash between the broker's acknowledgement and the commit loses nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from persistbuild import apply, email, make_plan, rows
from pipeline_testing import (
    REFERENCE_SQL,
    free_port,
    http_get,
    own_schema,
    own_topics,
    read_all,
    start_stage,
    stop,
    wait_for,
)

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.records.change import RecordChange
from mailroom.settings import Settings
from persist import feed, outbox
from persist.batch import Item, apply_batch

pytestmark = pytest.mark.integration

FIELDS = ("topic_prefix", "database_url", "kafka_session_timeout_ms")


@pytest.fixture
def feed_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    with own_schema(isolated_settings, f"feed_{unique_name}",
                    prepare=lambda conn: conn.execute(REFERENCE_SQL)) as settings, \
            own_topics(settings, {"records": 3}):
        yield settings


def store_mail(db: psycopg.Connection, codec: Codec) -> None:
    """A case from a known customer, a reply threaded onto it, a queue item for a stranger."""
    apply(db, codec, make_plan(codec, email(message_id="m1@customer.example")))
    apply(db, codec,
          make_plan(codec, email(message_id="m2@customer.example", subject="Re: Printer broken",
                                 in_reply_to="m1@customer.example", minutes=5)),
          make_plan(codec, email(message_id="m3@stranger.example",
                                 sender="who@stranger.example", subject="Hello")))


def relay_until_empty(settings: Settings, db: psycopg.Connection, codec: Codec) -> int:
    producer = kafka.make_producer(settings)
    try:
        with connect(settings) as conn:
            relay = feed.Relay(settings, conn, producer, codec)
            assert relay.try_lead()
            total = 0
            while marked := relay.round(limit=3):  # small rounds: several rounds, in order
                total += marked
            return total
    finally:
        producer.close()


def rebuilt(settings: Settings, codec: Codec) -> dict[str, RecordChange | None]:
    """What a consumer of the feed alone knows: the latest value per key."""
    latest: dict[str, RecordChange | None] = {}
    for record in sorted(read_all(settings, "records"), key=lambda r: (r.partition, r.offset)):
        key = record.key.decode()
        latest[key] = None if record.value is None else codec.decode_record(record.value,
                                                                            RecordChange)
    return latest


def activities_in_postgres(db: psycopg.Connection) -> dict[int, tuple[Any, ...]]:
    found = rows(db, "SELECT id, dedupe_key, message_id, subject, regarding, parent_id, "
                     "correlation_method, deleted_at IS NOT NULL FROM email_activities")
    parties = rows(db, "SELECT activity_id, role, address, record FROM activity_parties")
    boxes = rows(db, "SELECT activity_id, mailbox_id FROM activity_mailboxes")
    return {r[0]: (*r[1:], sorted(p[1:] for p in parties if p[0] == r[0]),
                   sorted(b[1] for b in boxes if b[0] == r[0])) for r in found}


def activities_in_feed(latest: dict[str, RecordChange | None]) -> dict[int, tuple[Any, ...]]:
    out = {}
    for change in latest.values():
        if change is None or change.activity is None:
            continue
        a = change.activity
        out[a.id] = (a.dedupe_key, a.message_id, a.subject, a.regarding, a.parent_id,
                     a.correlation_method, a.deleted_at is not None,
                     sorted((p.role, p.address, p.record) for p in a.parties),
                     sorted(m.mailbox_id for m in a.mailboxes))
    return out


def test_a_consumer_of_the_feed_alone_rebuilds_the_activities(
    feed_settings: Settings, codec: Codec,
) -> None:
    with connect(feed_settings) as db:
        store_mail(db, codec)
        # A CRM user edits one activity and deletes a queue item: the feed follows both.
        db.execute("UPDATE email_activities SET subject = 'Printer on fire' "
                   "WHERE message_id = 'm1@customer.example'")
        queue_item = rows(db, "SELECT queue_id || ':' || activity_id FROM queue_items")[0][0]
        db.execute("DELETE FROM queue_items")
        db.commit()
        assert relay_until_empty(feed_settings, db, codec) > 0
        assert outbox.backlog(db).unpublished == 0

        latest = rebuilt(feed_settings, codec)
        expected = activities_in_postgres(db)
        assert len(expected) == 3
        assert activities_in_feed(latest) == expected
        # The edit is there, with who made it; the deleted queue item is a tombstone.
        edited = [c for c in latest.values() if c and c.activity
                  and c.activity.subject == "Printer on fire"]
        assert len(edited) == 1 and edited[0].writer == ""
        assert latest[f"queue_item:{queue_item}"] is None
        [case] = [c for c in latest.values() if c and c.case]
        assert case.writer == "persist" and case.case is not None
        assert f"case:{case.case.id}" in {a[3] for a in expected.values()}
        # Reference records imported before persist ran are on the feed too.
        ann = latest["contact:c-ann"]
        assert ann is not None and ann.contact is not None
        assert ann.contact.addresses == ("ann@customer.example",)


def test_a_rolled_back_batch_leaves_nothing_to_publish(
    feed_settings: Settings, codec: Codec,
) -> None:
    plan = make_plan(codec, email(message_id="gone@customer.example"))
    with connect(feed_settings) as db:
        before = outbox.backlog(db).unpublished  # the reference records the test loaded
        with pytest.raises(RuntimeError), db.transaction():
            apply_batch(db, codec, [Item(plan, codec.encode_record(plan), 1)])
            assert outbox.backlog(db).unpublished > before  # noted inside the transaction
            raise RuntimeError("the batch fails after the plans were applied")
        assert outbox.backlog(db).unpublished == before
        assert rows(db, "SELECT count(*) FROM email_activities") == [(0,)]


def test_one_relay_publishes_a_schema_the_second_stands_by(
    feed_settings: Settings, codec: Codec,
) -> None:
    with connect(feed_settings) as first, connect(feed_settings) as second:
        one = feed.Relay(feed_settings, first, None, codec)
        two = feed.Relay(feed_settings, second, None, codec)
        assert one.try_lead()
        assert not two.try_lead()
        assert outbox.backlog(second).relay_running
        first.close()  # the leader's session ends: its lock goes with it (once the server
        wait_for(two.try_lead)  # has noticed the disconnect)


def test_a_crash_between_publish_and_commit_loses_nothing(
    feed_settings: Settings, codec: Codec,
) -> None:
    with connect(feed_settings) as db:
        store_mail(db, codec)
        noted = outbox.backlog(db).unpublished
        assert noted > 0
    # Dies (SIGKILL) right after the broker acknowledged its first round.
    crashed = start_stage(feed_settings, "feed", FIELDS,
                          MAILROOM_FAULT_POINTS=feed.AFTER_PUBLISH)
    assert crashed.wait(timeout=60) == -9
    published_once = rebuilt(feed_settings, codec)
    assert published_once  # on the topic...
    with connect(feed_settings) as db:
        assert outbox.backlog(db).unpublished == noted  # ...but not marked: nothing lost

    relay = start_stage(feed_settings, "feed", FIELDS)
    try:
        def drained() -> bool:
            with connect(feed_settings) as db:
                return outbox.backlog(db).unpublished == 0
        wait_for(drained, timeout=60)
    finally:
        stop(relay)
    with connect(feed_settings) as db:
        assert activities_in_feed(rebuilt(feed_settings, codec)) == activities_in_postgres(db)


def test_the_relay_process_runs_until_stopped(feed_settings: Settings, codec: Codec) -> None:
    port = free_port()
    settings = feed_settings.replace(metrics_port=port)
    stop_event = threading.Event()
    thread = threading.Thread(target=feed.run, args=(settings, stop_event),
                              kwargs={"codec": codec})
    thread.start()
    try:
        with connect(feed_settings) as db:
            store_mail(db, codec)

            def published() -> bool:
                return outbox.backlog(db).unpublished == 0 and bool(
                    activities_in_feed(rebuilt(feed_settings, codec)))
            wait_for(published, timeout=60)
            assert activities_in_feed(rebuilt(feed_settings, codec)) == \
                activities_in_postgres(db)
        # Ready while it leads; its backlog and output on /metrics.
        assert wait_for(lambda: http_get(port, "/readyz")[0] == 200)
        metrics = http_get(port, "/metrics")[1]
        assert "mailroom_feed_backlog" in metrics and "mailroom_feed_leading 1.0" in metrics
        assert 'mailroom_records_out_total{stage="feed"}' in metrics
    finally:
        stop_event.set()
        thread.join(timeout=60)
    assert not thread.is_alive()


def test_a_lost_database_session_is_waited_out_and_the_lock_taken_again(
    feed_settings: Settings, codec: Codec,
) -> None:
    stop_event = threading.Event()
    thread = threading.Thread(target=feed.run, args=(feed_settings, stop_event),
                              kwargs={"codec": codec})
    thread.start()
    try:
        with connect(feed_settings, autocommit=True) as db:
            cls, obj = outbox.lock_key(db)

            def leader() -> int | None:
                row = db.execute(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = %s::bigint::oid AND objid = %s::bigint::oid",
                    (cls, obj)).fetchone()
                return int(row[0]) if row else None

            first = wait_for(leader)
            db.execute("SELECT pg_terminate_backend(%s)", (first,))  # the session is cut
            store_mail(db, codec)  # changes made while the relay has no session
            second = wait_for(lambda: (pid := leader()) != first and pid)
            assert second != first
            wait_for(lambda: outbox.backlog(db).unpublished == 0)
            assert activities_in_feed(rebuilt(feed_settings, codec)) == \
                activities_in_postgres(db)
    finally:
        stop_event.set()
        thread.join(timeout=60)
    assert not thread.is_alive()  # and it stops when asked


def test_a_body_too_large_for_the_topic_goes_by_claim_check(
    feed_settings: Settings, codec: Codec,
) -> None:
    import hashlib

    from mailroom.blobs import BlobStore

    settings = feed_settings.replace(claim_check_bytes=4096)
    body = "A long complaint. " * 1000  # 18 KB
    producer = kafka.make_producer(settings)
    try:
        with connect(settings) as db, connect(settings, autocommit=True) as blob_conn:
            apply(db, codec, make_plan(codec, email(message_id="long@customer.example",
                                                    body=body)))
            blobs = BlobStore(blob_conn)
            relay = feed.Relay(settings, db, producer, codec, blobs)
            assert relay.try_lead()
            while relay.round():
                pass
            [change] = [c for c in rebuilt(settings, codec).values() if c and c.activity]
            assert change.activity is not None
            assert change.activity.text_body is None
            stored = rows(db, "SELECT text_body FROM email_activities")[0][0]
            ref = change.activity.text_body_ref
            assert ref == hashlib.sha256(stored.encode()).hexdigest()
            assert blobs.get(ref).decode() == stored
    finally:
        producer.close()
