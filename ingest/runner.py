"""``mailroom run ingest``: poll every runnable mailbox, each on its profile's interval.

One process, one connection per mailbox at a time (first step). Failures follow the rules of
:mod:`ingest.errors`: transient → ``retrying`` with exponential backoff (and after many in a row
``disabled`` as transient, re-enabled by a login-free probe); permanent → ``disabled`` with the
cause, and no login is attempted again until an administrator enables the mailbox.

Next step (not yet built): share mailboxes among processes through consumer-group assignment
of the compacted mailboxes topic, with the group generation as the fence token. The fencing
itself is in place: each process takes a fresh generation from PostgreSQL at start, claims the
mailboxes it polls, and every checkpoint write is compare-and-set on that claim.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg

from ingest import connect, imap, pop3, probe, store
from ingest.job import Job
from ingest.model import Mailbox, Protocol
from ingest.publish import BlobPut, Producer
from ingest.store import Fenced
from mailroom.codec import Codec
from mailroom.errors import PermanentError, TransientError
from mailroom.settings import Settings

log = logging.getLogger(__name__)

BATCH_SIZE = 100  # messages per FETCH and per publish/checkpoint round
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0
DISABLE_AFTER_FAILURES = 20  # transient failures in a row before the mailbox is parked
IDLE_TICK_S = 0.5


def backoff_s(failures: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, capped (failures counts from 1)."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, failures - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


class Ingestor:
    def __init__(self, settings: Settings, conn: psycopg.Connection, producer: Producer,
                 put_blob: BlobPut, codec: Codec | None = None) -> None:
        self.settings = settings
        self.conn = conn
        self.producer = producer
        self.put_blob = put_blob
        self.codec = codec or Codec.from_settings(settings)
        self.generation = store.new_generation(conn)
        conn.commit()
        self.next_poll: dict[int, float] = {}
        self.stop = threading.Event()

    def poll(self, mailbox: Mailbox) -> int:
        """One pass over one mailbox; returns messages published. Records the outcome."""
        assert mailbox.id is not None
        profile = store.profile(self.conn, mailbox.profile_id)
        if not store.claim(self.conn, mailbox.id, self.generation):
            self.conn.commit()
            log.info("mailbox=%s owned by a newer process; skipped", mailbox.address)
            return 0
        self.conn.commit()
        job = Job(self.settings, self.conn, profile, mailbox, self.generation, self.codec,
                  self.producer, self.put_blob)
        try:
            if profile.protocol is Protocol.IMAP:
                with connect.imap(self.settings, profile, mailbox) as client:
                    n = imap.ingest(job, client, BATCH_SIZE)
            else:
                with connect.pop3(self.settings, profile, mailbox) as conn:
                    n = pop3.ingest(job, conn, BATCH_SIZE)
        except Fenced as exc:
            self.conn.rollback()
            log.warning("mailbox=%s %s", mailbox.address, exc)
            return 0
        except PermanentError as exc:
            self.conn.rollback()
            log.error("mailbox=%s disabled: %s", mailbox.address, exc)
            store.set_status(self.conn, mailbox.id, "disabled", str(exc),
                             disabled_kind="permanent")
            self.conn.commit()
            return 0
        except TransientError as exc:
            self.conn.rollback()
            failures = store.failures(self.conn, mailbox.id) + 1
            if failures >= DISABLE_AFTER_FAILURES:
                store.set_status(self.conn, mailbox.id, "disabled", f"outage: {exc}",
                                 disabled_kind="transient")
            else:
                delay = backoff_s(failures)
                store.set_status(self.conn, mailbox.id, "retrying", str(exc),
                                 next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay))
                self.next_poll[mailbox.id] = time.monotonic() + delay
            self.conn.commit()
            log.warning("mailbox=%s retrying (%d): %s", mailbox.address, failures, exc)
            return 0
        store.set_status(self.conn, mailbox.id, "ok", f"{n} new message(s) in the last pass")
        self.conn.commit()
        if n:
            log.info("mailbox=%s published=%d", mailbox.address, n)
        return n

    def revive(self) -> None:
        """Re-enable mailboxes an outage disabled, once their server answers again."""
        rows = self.conn.execute(
            "SELECT id FROM ingest_mailboxes WHERE NOT enabled AND disabled_kind = 'transient'"
        ).fetchall()
        for (mailbox_id,) in rows:
            m = store.mailbox(self.conn, int(mailbox_id))
            if probe.reachable(store.profile(self.conn, m.profile_id)) is None:
                store.set_enabled(self.conn, int(mailbox_id), True)
                log.info("mailbox=%s re-enabled: its server answers again", m.address)
        self.conn.commit()

    def run_once(self) -> int:
        """Poll every runnable mailbox that is due; returns messages published."""
        total = 0
        now = time.monotonic()
        for m in store.mailboxes(self.conn, runnable_only=True):
            assert m.id is not None
            if self.stop.is_set():
                break
            if self.next_poll.get(m.id, 0.0) > now:
                continue
            total += self.poll(m)
            interval = store.profile(self.conn, m.profile_id).poll_interval_s
            self.next_poll[m.id] = max(self.next_poll.get(m.id, 0.0), time.monotonic() + interval)
        self.conn.commit()
        return total

    def run(self) -> None:
        last_revive = 0.0
        while not self.stop.is_set():
            self.run_once()
            if time.monotonic() - last_revive > 30:
                self.revive()
                last_revive = time.monotonic()
            self.stop.wait(IDLE_TICK_S)


def blob_put(conn: psycopg.Connection) -> BlobPut:
    """Claim checks go to the kernel's blob store, on a connection of their own (autocommit:
    a blob must be durable before the record that references it is sent)."""

    def put(data: bytes) -> str:
        from mailroom import blobs  # imported at the first claim check

        return str(blobs.BlobStore(conn).put(data))

    return put


def main(settings: Settings, args: object) -> int:
    """Entry of ``mailroom run ingest``: SIGTERM finishes the mailbox in hand and stops."""
    from mailroom import kafka  # the kernel's clients (imported late: heavy)
    from mailroom.db import connect as db_connect

    conn = db_connect(settings)
    producer = kafka.make_producer(settings)
    blob_conn = db_connect(settings, autocommit=True)
    ingestor = Ingestor(settings, conn, producer, blob_put(blob_conn))
    signal.signal(signal.SIGTERM, lambda *_: ingestor.stop.set())
    log.info("ingest started generation=%d", ingestor.generation)
    try:
        ingestor.run()
    finally:
        producer.flush()
        producer.close()
        conn.close()
        blob_conn.close()
    return 0
