"""The change feed's relay (``mailroom run feed``): the outbox → the compacted ``records`` topic.

Its own process, beside persist rather than inside it: persist's transactions only add outbox
rows (statement triggers, migration 0063), so persist's throughput does not wait on a second
topic, and an operator watches the feed's backlog (`mailroom doctor`) and restarts the relay on
its own. One relay per database schema publishes at a time — it holds an advisory lock; a
second one started for failover waits for the lock — because per-record order on the topic
comes from publishing in outbox order from one place. One relay publishes about twice as many
emails' records per second as one persist process stores (docs/feed.md gives the figures).

A round: read the unpublished rows in seq order, read the current state of each record they
name, send one record per record (a tombstone for a deleted one) keyed ``<type>:<id>``, wait
for the broker's acknowledgement (acks=all), then mark the rows published and commit. A crash
anywhere before that commit leaves the rows unpublished: the next relay sends them again —
the same or a newer state under the same key, which compaction and any consumer that keeps the
latest per key take in their stride. The feed is at least once, and never behind the database
for longer than the relay is down.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
from kafka.errors import KafkaError
from prometheus_client import Gauge

from mailroom import faults, kafka
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.db.outage import LOST, Outage
from mailroom.errors import TransientError
from mailroom.metrics import Batch, Health, StageMetrics, serve
from mailroom.records.change import FeedActivity, RecordChange, feed_key
from mailroom.settings import Settings
from mailroom.stage.loop import stop_signals
from persist import feedstate, outbox

log = logging.getLogger(__name__)

#: Outbox rows per round (one read per record type, one send of at most this many records).
#: Persist notes an email activity several times per batch (its row, then its parties written
#: behind at the end of the batch): a round that spans a whole persist batch sends it once.
BATCH = 2000
#: How long an idle relay sleeps before it looks at the outbox again.
IDLE_S = 0.2
#: Published rows are kept this long (for `mailroom doctor` and for looking back), then pruned.
KEEP_PUBLISHED = timedelta(hours=24)
PRUNE_EVERY_S = 300.0
#: How often a relay standing by tries the lock (the leader's session ending frees it).
STANDBY_S = 2.0
#: How often the backlog gauges are read (one query over the outbox's unpublished rows).
BACKLOG_EVERY_S = 5.0

AFTER_PUBLISH = faults.register(
    "feed:after_publish",
    "the broker has the records of a round, the outbox rows are not yet marked published",
)


class Relay:
    """One relay over one schema. ``conn``: not autocommit (each round is one transaction);
    ``blobs``: for the bodies too large for the topic (None: no claim check, the broker
    refuses such a record and the round is retried)."""

    def __init__(self, settings: Settings, conn: psycopg.Connection, producer: Any,
                 codec: Codec, blobs: BlobStore | None = None) -> None:
        self.settings = settings
        self.conn = conn
        self.producer = producer
        self.codec = codec
        self.blobs = blobs
        self.topic = settings.topic("records")
        self.published = 0  # records sent and marked, since start

    def try_lead(self) -> bool:
        """Take this schema's relay lock (session level: it ends with the connection)."""
        cls, obj = outbox.lock_key(self.conn)
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (cls, obj)).fetchone()
        self.conn.commit()
        return bool(row and row[0])

    def round(self, limit: int = BATCH) -> int:
        """Publish what the outbox holds (up to ``limit`` rows); the number of rows marked."""
        try:
            rows = outbox.pending(self.conn, limit)
            if not rows:
                self.conn.commit()
                return 0
            latest = outbox.latest_per_record(rows)
            states = feedstate.read(self.conn, (n.key for n in latest))
            futures = []
            for noted in latest:
                state = states.get(noted.key)
                value = None if state is None else self._encode(noted, state)
                futures.append(self.producer.send(
                    self.topic, key=feed_key(*noted.key).encode(), value=value))
            timeout = self.settings.kafka_request_timeout_ms / 1000
            self.producer.flush(timeout=timeout)
            for future in futures:
                future.get(timeout=timeout)
            faults.point(self.settings, AFTER_PUBLISH)
            marked = outbox.mark_published(self.conn, [n.seq for n in rows])
            self.conn.commit()
        except BaseException:
            if not self.conn.closed and not self.conn.broken:
                self.conn.rollback()
            raise
        self.published += len(latest)
        return marked

    def _encode(self, noted: outbox.Noted, state: feedstate.FeedState) -> bytes:
        field = {FeedActivity: "activity", feedstate.FeedCase: "case",
                 feedstate.FeedQueueItem: "queue_item",
                 feedstate.FeedContact: "contact"}[type(state)]
        change = RecordChange(noted.record_type, noted.record_id, noted.seq, noted.noted_at,
                              noted.writer, **{field: state})
        value = self.codec.encode_record(change)
        if len(value) > self.settings.claim_check_bytes and isinstance(state, FeedActivity) \
                and self.blobs is not None:
            value = self.codec.encode_record(
                dataclasses.replace(change, activity=self._claim_check(state)))
        return value

    def _claim_check(self, activity: FeedActivity) -> FeedActivity:
        """The bodies to the blob store, their sha256 on the record (content addressed: a
        republish stores nothing twice)."""
        assert self.blobs is not None
        text_ref = self.blobs.put(activity.text_body.encode()) if activity.text_body else None
        html_ref = self.blobs.put(activity.html_body.encode()) if activity.html_body else None
        return dataclasses.replace(
            activity, text_body=None if text_ref else activity.text_body,
            html_body=None if html_ref else activity.html_body,
            text_body_ref=text_ref, html_body_ref=html_ref)

    def prune(self) -> int:
        gone = outbox.prune(self.conn, KEEP_PUBLISHED)
        self.conn.commit()
        return gone


class FeedStatus:
    """What the endpoints and gauges show: leading, waiting out an outage, the backlog."""

    def __init__(self, metrics: StageMetrics) -> None:
        self.metrics = metrics
        self.leading = False
        self.away = False
        self.last_loop = time.monotonic()
        self.marked = 0  # outbox rows marked published, since start
        self._read_at = 0.0
        r = metrics.registry
        self.backlog = Gauge("mailroom_feed_backlog", "Outbox rows not yet published.",
                             registry=r)
        self.oldest = Gauge("mailroom_feed_oldest_seconds",
                            "Age of the oldest unpublished outbox row.", registry=r)
        self.leader = Gauge("mailroom_feed_leading",
                            "1 while this relay holds its schema's lock and publishes.",
                            registry=r)

    def alive(self) -> bool:
        # A round (or an outage's wait) takes seconds; a loop silent for minutes is stuck.
        return time.monotonic() - self.last_loop < 120

    def ready(self) -> bool:
        return self.leading and not self.away

    def after_standby(self) -> None:
        self.last_loop = time.monotonic()
        self.leader.set(0)

    def after_round(self, relay: Relay, marked: int) -> None:
        self.last_loop = time.monotonic()
        self.leader.set(1 if self.leading else 0)
        if marked:
            self.marked += marked
            self.metrics.batch(Batch(self.marked, relay.published, 0))
        if time.monotonic() - self._read_at >= BACKLOG_EVERY_S:
            self._read_at = time.monotonic()
            b = outbox.backlog(relay.conn)
            relay.conn.commit()
            self.backlog.set(b.unpublished)
            self.oldest.set(b.oldest_age_s)


def run(settings: Settings, stop: threading.Event, *,
        database: Callable[..., psycopg.Connection] | None = None,
        producer: Any = None, codec: Codec | None = None) -> int:
    """Lead (or wait to), publish until ``stop``; PostgreSQL or the broker going away is
    waited out, never a reason to exit."""
    codec = codec or Codec.from_settings(settings)

    def db(autocommit: bool = False) -> psycopg.Connection:
        if database is not None:
            return database(autocommit=autocommit)
        return connect(settings, autocommit=autocommit)

    own_producer = producer is None
    producer = producer or kafka.make_producer(settings, client_id="mailroom-feed")
    relay: Relay | None = None
    blobs: BlobStore | None = None
    outage = Outage("feed round")
    broker = Outage("feed round", dependency="the broker")
    leading = standing_by = False
    pruned_at = 0.0
    status = FeedStatus(StageMetrics("feed"))
    server = serve(settings, status.metrics, Health(status.alive, status.ready))
    try:
        while not stop.is_set():
            status.last_loop = time.monotonic()
            status.leading = leading
            try:
                if relay is None or relay.conn.closed or relay.conn.broken:
                    # Not `connected()`: its wait would not heed SIGTERM; LOST below waits.
                    if relay is not None:
                        relay.conn.close()
                    if blobs is not None:
                        blobs.conn.close()
                    relay, leading = None, False
                    blobs = BlobStore(db(autocommit=True))
                    relay = Relay(settings, db(), producer, codec, blobs)
                if not leading:
                    leading = relay.try_lead()
                    if not leading:
                        if not standing_by:
                            log.info("another feed relay publishes this schema: standing by")
                        standing_by = True
                        status.after_standby()
                        stop.wait(STANDBY_S)
                        continue
                    standing_by = False
                    log.info("feed relay publishing to %s", relay.topic)
                marked = relay.round()
                outage.over()
                broker.over()
                status.away = False
                status.leading = True
                status.after_round(relay, marked)
                if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                    relay.prune()
                    pruned_at = time.monotonic()
                if not marked:
                    stop.wait(IDLE_S)
            except LOST as exc:
                status.away, leading = True, False
                stop.wait(outage.next_wait(exc))
                if relay is not None:
                    relay.conn.close()  # reopened (and the lock taken again) next round
            except (KafkaError, TransientError) as exc:
                status.away = True
                stop.wait(broker.next_wait(exc))
        return 0
    finally:
        if server is not None:
            server.shutdown()
        if own_producer:
            producer.close()
        if relay is not None:
            relay.conn.close()
        if blobs is not None:
            blobs.conn.close()


def main(settings: Settings, args: argparse.Namespace | None = None) -> int:
    stop = threading.Event()
    with stop_signals(lambda *_: stop.set()):  # SIGTERM: the round in hand ends, then exit
        return run(settings, stop)
