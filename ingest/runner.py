"""``mailroom run ingest``: poll every mailbox this process serves, each on its interval.

Which mailboxes: the process's share of the mailboxes topic, assigned by its consumer group
(:mod:`ingest.assignment`); several processes share the mailboxes and a stopped one's move to
the others. Used without an assignment (tests, benchmarks) an :class:`Ingestor` serves every
runnable mailbox. One connection per mailbox at a time.

Failures follow the rules of :mod:`ingest.errors`: transient → ``retrying`` with exponential
backoff (and after many in a row ``disabled`` as transient, re-enabled by a login-free probe);
permanent → ``disabled`` with the cause, and no login is attempted again until an administrator
enables the mailbox. Every checkpoint write is compare-and-set on the fence token the pass
claimed the mailbox with.

PostgreSQL away (:mod:`mailroom.db.outage`): the pass in hand stops where it is (nothing past the
last checkpoint is lost: it is fetched again), the process waits with a bounded backoff, reopens
its connections and carries on; ``/readyz`` says not ready meanwhile. It never exits for it.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from imapclient import IMAPClient

from ingest import announce, connect, credentials, idle, imap, pop3, probe, store
from ingest.assignment import Assignment, Revoked
from ingest.errors import classify
from ingest.job import Job
from ingest.metrics import IngestMetrics
from ingest.model import Mailbox, Protocol
from ingest.publish import BlobPut, Producer
from ingest.store import Fenced
from mailroom.codec import Codec
from mailroom.db.outage import LOST, Outage, renewed
from mailroom.errors import PermanentError
from mailroom.settings import Settings

log = logging.getLogger(__name__)


OBSERVE_EVERY_S = 2.0  # per-mailbox gauges are read from the database at most this often


def backoff_s(settings: Settings, failures: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, capped (failures counts from 1)."""
    base, cap = settings.ingest_backoff_base_ms / 1000, settings.ingest_backoff_max_ms / 1000
    ceiling = min(cap, base * 2 ** max(0, failures - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


class Ingestor:
    def __init__(self, settings: Settings, conn: psycopg.Connection, producer: Producer,
                 put_blob: BlobPut, codec: Codec | None = None,
                 assignment: Assignment | None = None,
                 metrics: IngestMetrics | None = None,
                 database: Callable[[], psycopg.Connection] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or IngestMetrics()  # served only when metrics_port is set
        self.assignment = assignment
        self.conn = conn
        self.producer = producer
        self.put_blob = put_blob
        self.codec = codec or Codec.from_settings(settings)
        # Without an assignment the process is the only one: one token for its lifetime.
        self.generation = store.new_generation(conn)
        conn.commit()
        self.next_poll: dict[int, float] = {}
        self.stop = assignment.stop if assignment else threading.Event()
        # IDLE only inside run(): run_once() is one pass per mailbox and returns (tests, bench).
        self.idle = False
        self.database = database  # reopens the connection after an outage; None: never
        self.outage = Outage("mailbox pass")

    def token(self) -> int | None:
        """The fence token passes claim mailboxes with (None: no assignment at the moment)."""
        return self.assignment.token if self.assignment else self.generation

    def _between_batches(self, mailbox_id: int, token: int) -> Callable[[], None]:
        def check() -> None:
            self.metrics.last_loop = time.monotonic()  # a long pass is alive, not wedged
            if self.assignment is not None:
                self.assignment.ensure(mailbox_id, token)
            elif self.stop.is_set():
                raise Revoked("shutting down: the batch in hand is done, the pass stops")

        return check

    def _announce(self, mailbox: Mailbox, old_status: str) -> None:
        """Publish a status change to the mailboxes topic (only as a group member: the topic
        exists then). Losing one is repaired by the next change or ``mailbox publish``."""
        assert mailbox.id is not None
        if self.assignment is None or store.mailbox(self.conn, mailbox.id).status == old_status:
            return
        try:
            announce.publish(self.settings, self.conn, self.producer, [mailbox.id], self.codec)
        except Exception as exc:  # noqa: BLE001 - derived data; the database has the truth
            log.warning("mailbox=%s status change not published: %s", mailbox.address, exc)

    def poll(self, mailbox: Mailbox) -> int:
        """One pass over one mailbox; returns messages published. Records the outcome."""
        assert mailbox.id is not None
        if not mailbox.polled:
            return 0  # its mail arrives through its forward mailbox: never logged in to
        if self._refused(mailbox):
            return 0
        token = self.token()
        if token is None:
            return 0
        if self.assignment is not None and not self.assignment.serves(mailbox.id, token):
            return 0  # a rebalance since the list was made: maybe not ours any more
        profile = store.profile(self.conn, mailbox.profile_id)
        if not store.claim(self.conn, mailbox.id, token):
            self.conn.commit()
            log.info("mailbox=%s owned by a newer process; skipped", mailbox.address)
            return 0
        self.conn.commit()
        job = Job(self.settings, self.conn, profile, mailbox, token, self.codec,
                  self.producer, self.put_blob, self._between_batches(mailbox.id, token))
        batch = self.settings.ingest_batch_size
        started = time.monotonic()
        result = self._pass(job, profile.protocol, batch)
        self.metrics.passed(profile.protocol.value, time.monotonic() - started, job.published)
        self._announce(mailbox, mailbox.status)
        return result

    def _refused(self, mailbox: Mailbox) -> bool:
        """A forward mailbox whose forwards could not be trusted is not polled (fail closed:
        its mail stays on the server); the status says why until the cause is fixed."""
        gap = mailbox.trust_gap(self.settings.unwrap_authserv_id)
        if gap is None:
            return False
        if (mailbox.status, mailbox.status_detail) != ("refused", gap):
            assert mailbox.id is not None
            log.error("mailbox=%s not polled: %s", mailbox.address, gap)
            store.set_status(self.conn, mailbox.id, "refused", gap)
            self.conn.commit()
            self._announce(mailbox, mailbox.status)
        return True

    def _sole(self, mailbox_id: int) -> bool:
        """Is ``mailbox_id`` the only mailbox this process polls? (Then IDLE may hold its
        connection: there is no other mailbox waiting for the process.)"""
        mine = self.assignment.mailbox_ids() if self.assignment else None
        ids = [m.id for m in store.mailboxes(self.conn, runnable_only=True)
               if mine is None or m.id in mine]
        self.conn.commit()
        return ids == [mailbox_id]

    def _idle(self, job: Job, client: IMAPClient) -> int:
        """After a pass: IDLE on the INBOX until the poll interval is over (:mod:`ingest.idle`),
        when the server offers it and this is the process's only mailbox."""
        if (not self.idle or not self.settings.ingest_idle_wait_ms or not idle.usable(job, client)
                or not self._sole(job.mailbox_id)):
            return 0
        return idle.wait_and_ingest(
            job, client, self.settings.ingest_batch_size,
            wait_s=self.settings.ingest_idle_wait_ms / 1000,
            until=time.monotonic() + job.profile.poll_interval_s,
            still_sole=lambda: self._sole(job.mailbox_id),
            on_wakeup=self.metrics.idle_wakeups.inc,
        )

    def _pass(self, job: Job, protocol: Protocol, batch: int) -> int:
        mailbox, profile = job.mailbox, job.profile
        assert mailbox.id is not None
        log.debug("mailbox=%s pass starts token=%d", mailbox.address, job.generation)
        try:
            if protocol is Protocol.IMAP:
                with connect.imap(self.settings, profile, mailbox) as client:
                    n = imap.ingest(job, client, batch)
                    n += self._idle(job, client)
            else:
                with connect.pop3(self.settings, profile, mailbox) as conn:
                    n = pop3.ingest(job, conn, batch)
        except Revoked as exc:
            self.conn.rollback()
            log.info("mailbox=%s %s", mailbox.address, exc)
            return 0
        except Fenced as exc:
            self.conn.rollback()
            self.metrics.failed("fenced", exc)
            log.warning("mailbox=%s %s", mailbox.address, exc)
            return 0
        except (psycopg.Error, *LOST):
            raise  # the database's failure, not the mailbox's: nothing to record it in
        except Exception as exc:  # noqa: BLE001 - every failure after login gets a name
            self.conn.rollback()
            return self._failed(mailbox, exc, profile.host, profile.port)
        store.set_status(self.conn, mailbox.id, "ok", f"{n} new message(s) in the last pass")
        self.conn.commit()
        if n:
            log.info("mailbox=%s published=%d token=%d", mailbox.address, n, job.generation)
        return n

    def _failed(self, mailbox: Mailbox, exc: Exception, host: str, port: int) -> int:
        """Record a failed pass by its cause: permanent → disabled; transient → retrying with
        backoff (disabled as an outage after many in a row). Returns 0 (nothing published)."""
        assert mailbox.id is not None
        err = classify(exc, host, port)
        if err is not exc:  # the traceback of a raw exception, for whoever debugs it
            log.debug("mailbox=%s %s", mailbox.address, type(exc).__name__, exc_info=exc)
        if isinstance(err, PermanentError):
            self.metrics.failed("permanent", err)
            log.error("mailbox=%s disabled: %s", mailbox.address, err)
            store.set_status(self.conn, mailbox.id, "disabled", str(err),
                             disabled_kind="permanent")
            self.conn.commit()
            return 0
        self.metrics.failed("transient", err)
        failures = store.failures(self.conn, mailbox.id) + 1
        if failures >= self.settings.ingest_disable_after_failures:
            store.set_status(self.conn, mailbox.id, "disabled", f"outage: {err}",
                             disabled_kind="transient")
        else:
            delay = backoff_s(self.settings, failures)
            store.set_status(self.conn, mailbox.id, "retrying", str(err),
                             next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay))
            self.next_poll[mailbox.id] = time.monotonic() + delay
        self.conn.commit()
        log.warning("mailbox=%s retrying (%d): %s", mailbox.address, failures, err)
        return 0

    def revive(self) -> None:
        """Re-enable mailboxes an outage disabled, once their server answers again."""
        rows = self.conn.execute(
            "SELECT id FROM ingest_mailboxes WHERE NOT enabled AND disabled_kind = 'transient' "
            "AND via_mailbox_id IS NULL"
        ).fetchall()
        mine = self.assignment.mailbox_ids() if self.assignment else None
        for (mailbox_id,) in rows:
            if mine is not None and int(mailbox_id) not in mine:
                continue  # another process's: it probes its own
            m = store.mailbox(self.conn, int(mailbox_id))
            if probe.reachable(store.profile(self.conn, m.profile_id)) is None:
                store.set_enabled(self.conn, int(mailbox_id), True)
                self.conn.commit()
                self._announce(m, m.status)
                log.info("mailbox=%s re-enabled: its server answers again", m.address)
        self.conn.commit()

    def run_once(self) -> int:
        """Poll every runnable mailbox that is due; returns messages published."""
        total = 0
        now = time.monotonic()
        mine = self.assignment.mailbox_ids() if self.assignment else None
        for m in store.mailboxes(self.conn, runnable_only=True):
            assert m.id is not None
            if mine is not None and m.id not in mine:
                continue
            if self.stop.is_set():
                break
            if self.next_poll.get(m.id, 0.0) > now:
                continue
            # The interval counts from the start of a pass: a pass that IDLEd through it is
            # followed at once by a full pass (every folder), then IDLE again.
            started = time.monotonic()
            total += self.poll(m)
            interval = store.profile(self.conn, m.profile_id).poll_interval_s
            self.next_poll[m.id] = max(self.next_poll.get(m.id, 0.0), started + interval)
        self.conn.commit()
        return total

    def observe(self) -> None:
        """Refresh the per-mailbox gauges: enabled and backlog of the mailboxes served here."""
        mine = self.assignment.mailbox_ids() if self.assignment else None
        boxes = [m for m in store.mailboxes(self.conn)
                 if m.polled and (mine is None or m.id in mine)]
        self.metrics.mailboxes((m.address, m.enabled) for m in boxes)
        ids = {m.id for m in boxes}
        self.metrics.backlog([b for b in store.backlog(self.conn) if b.mailbox_id in ids])
        self.conn.commit()

    def run(self) -> None:
        self.idle = True
        last_revive = last_observe = 0.0
        tick_ms = self.settings.ingest_idle_tick_ms
        while not self.stop.is_set():
            self.metrics.last_loop = time.monotonic()
            try:
                if self.assignment is not None:
                    # Group membership and mailbox changes; rebalances happen in here, when no
                    # pass is running, or between batches (Job.between_batches).
                    self.assignment.poll(tick_ms)
                self.run_once()
                if time.monotonic() - last_observe > OBSERVE_EVERY_S:
                    self.observe()
                    last_observe = time.monotonic()
                if time.monotonic() - last_revive > self.settings.ingest_revive_interval_s:
                    self.revive()
                    last_revive = time.monotonic()
            except LOST as exc:
                self._database_lost(exc)
                continue
            if self.outage.away:
                self.outage.over()
            if self.assignment is None:
                self.stop.wait(tick_ms / 1000)

    def _database_lost(self, exc: Exception) -> None:
        """Wait (SIGTERM still stops it), then reopen the connections; the loop goes on, and
        what the pass did not checkpoint is fetched again."""
        self.outage.wait(exc, sleep=self.stop.wait)
        if self.database is None:
            return
        try:
            self.conn = renewed(self.conn, self.database)
            if self.assignment is not None:
                self.assignment.reconnect()
        except LOST:
            pass  # still away: the next turn meets it and waits again


@dataclass
class BlobPutter:
    """Claim checks go to the kernel's blob store, on a connection of their own (autocommit:
    a blob must be durable before the record that references it is sent); ``database``
    reopens it after an outage."""

    conn: psycopg.Connection
    database: Callable[[], psycopg.Connection] | None = None

    def __call__(self, data: bytes) -> str:
        from mailroom import blobs  # imported at the first claim check

        if self.database is not None:
            self.conn = renewed(self.conn, self.database)
        return str(blobs.BlobStore(self.conn).put(data))


def blob_put(conn: psycopg.Connection,
             database: Callable[[], psycopg.Connection] | None = None) -> BlobPutter:
    return BlobPutter(conn, database)


def main(settings: Settings, args: object) -> int:
    """Entry of ``mailroom run ingest``: SIGTERM finishes the mailbox in hand and stops."""
    from mailroom import kafka  # the kernel's clients (imported late: heavy)
    from mailroom.db import connect as db_connect
    from mailroom.db.outage import connected

    credentials.check_key(settings)  # a weak key: refuse to start, say why
    client_id = f"ingest-{socket.gethostname()}-{os.getpid()}"
    def database() -> psycopg.Connection:  # also after an outage
        return db_connect(settings)

    def autocommit() -> psycopg.Connection:
        return db_connect(settings, autocommit=True)

    # Started while PostgreSQL is down or restarting: wait for it, never exit.
    conn = connected(database, "start of ingest")
    producer = kafka.make_producer(settings, client_id=client_id)
    blobs = blob_put(connected(autocommit, "start of ingest"), autocommit)
    assignment = Assignment.join(settings, connected(autocommit, "start of ingest"), client_id,
                                 connect=autocommit)
    ingestor = Ingestor(settings, conn, producer, blobs, assignment=assignment,
                        database=database)
    server = watch(settings, ingestor)
    signal.signal(signal.SIGTERM, lambda *_: ingestor.stop.set())
    log.info("ingest started client_id=%s group=%s", client_id, assignment.consumer.config[
        "group_id"])
    try:
        ingestor.run()
    finally:
        if server is not None:
            server.shutdown()
        # Leave the group only after the last batch is in: then the mailboxes move at once.
        producer.flush()
        assignment.close()
        producer.close()
        # The connections of now: an outage may have replaced the first ones.
        ingestor.conn.close()
        blobs.conn.close()
        assignment.token_conn.close()
    return 0


def watch(settings: Settings, ingestor: Ingestor) -> Any:
    """Metrics and health endpoints (settings.metrics_port; 0: none). Alive while the loop (or
    a pass, between batches and IDLE rounds) turned within the max poll interval; ready while
    the process holds an assignment."""
    from mailroom.metrics import Health, serve

    stale_s = settings.kafka_max_poll_interval_ms / 1000
    assignment = ingestor.assignment
    return serve(settings, ingestor.metrics.stage, Health(
        alive=lambda: not ingestor.stop.is_set()
        and time.monotonic() - ingestor.metrics.last_loop < stale_s,
        ready=lambda: (assignment is None or assignment.token is not None)
        and not ingestor.outage.away,
    ))
