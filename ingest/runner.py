"""``mailroom run ingest``: poll every mailbox this process serves, each on its interval.

Which mailboxes: the process's share of the mailboxes topic, assigned by its consumer group
(:mod:`ingest.assignment`); several processes share the mailboxes and a stopped one's move to
the others. Used without an assignment (tests, benchmarks) an :class:`Ingestor` serves every
runnable mailbox.

Passes run concurrently, a bounded pool of sessions per server (:mod:`ingest.scheduler`; the
profile's ``max_connections``), each worker on a database connection of its own; one mailbox
has at most one pass at a time. Without a way to open connections (``database``) passes run
one after the other on the connection given.

Failures follow :mod:`ingest.failures`: transient → ``retrying`` with exponential backoff (and
after many in a row ``disabled`` as transient, re-enabled by a login-free probe,
:mod:`ingest.revive`); permanent → ``disabled`` with the cause, and no login is attempted again
until an administrator enables the mailbox. Every checkpoint write is compare-and-set on the
fence token the pass claimed the mailbox with.

PostgreSQL away (:mod:`mailroom.db.outage`): the pass in hand stops where it is (nothing past the
last checkpoint is lost: it is fetched again), the process waits with a bounded backoff, reopens
its connections and carries on; ``/readyz`` says not ready meanwhile. It never exits for it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from imapclient import IMAPClient

from ingest import announce, connect, credentials, failures, idle, imap, pop3, store
from ingest.assignment import Assignment, Revoked
from ingest.cadence import Cadence
from ingest.failures import backoff_s
from ingest.job import Job
from ingest.metrics import IngestMetrics
from ingest.model import Mailbox, Profile, Protocol
from ingest.publish import BlobPut, Producer
from ingest.revive import revive
from ingest.scheduler import Scheduler
from ingest.store import Fenced
from mailroom.codec import Codec
from mailroom.db.outage import LOST, Outage, renewed
from mailroom.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["BlobPutter", "Ingestor", "backoff_s", "blob_put", "main", "watch"]

# Per-mailbox gauges are read from the database at most this often.
OBSERVE_EVERY_S = 2.0
# The list of runnable mailboxes is read again at most this often while running (a round of
# passes, not every tick); at once when the assignment changes. Both reads cost in proportion to
# the mailboxes: past a few thousand they come less often (:mod:`ingest.cadence`).
REFRESH_EVERY_S = 2.0
# However long a read takes, the list is never older than this: a mailbox an administrator
# disabled or changed is polled as it was for at most this long.
REFRESH_AT_MOST_S = 60.0
OK_STATUS = "ok"  # what a pass that ended well writes
SLOW_READ_S = 1.0  # a list read longer than this is logged (with when the next one comes)
REVOKE_WAIT_S = 60.0  # a rebalance waits this long at most for the passes in hand to stop


class Ingestor:
    def __init__(self, settings: Settings, conn: psycopg.Connection, producer: Producer,
                 put_blob: BlobPut, codec: Codec | None = None,
                 assignment: Assignment | None = None,
                 metrics: IngestMetrics | None = None,
                 database: Callable[[], psycopg.Connection] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or IngestMetrics()  # served only when metrics_port is set
        self.assignment = assignment
        self._conn = conn
        self._local = threading.local()  # a worker's own database connection
        self.producer = producer
        self.put_blob = put_blob
        self.codec = codec or Codec.from_settings(settings)
        # Without an assignment the process is the only one: one token for its lifetime.
        self.generation = store.new_generation(conn)
        conn.commit()
        self.stop = assignment.stop if assignment else threading.Event()
        # IDLE only inside run(): run_once() is one pass per mailbox and returns (tests, bench).
        self.idle = False
        self.database = database  # opens connections: workers', and after an outage; None: never
        self.outage = Outage("mailbox pass")
        self.scheduler = Scheduler(self._work, self.stop, pool=database is not None)
        self._boxes: list[Mailbox] = []  # the runnable mailboxes this process serves
        self._published = 0  # by the passes of one run_once()
        self._count = threading.Lock()
        self._profiles: dict[int, Profile] = {}
        # The loop's reads of every mailbox: each within its share of the loop's time.
        self.list_reads = Cadence(REFRESH_EVERY_S, most_s=REFRESH_AT_MOST_S)
        self.gauge_reads = Cadence(OBSERVE_EVERY_S)
        self.looks = Cadence(settings.ingest_idle_tick_ms / 1000)  # for due mailboxes
        self._list_stale = False  # read the list at the next turn (mailboxes re-enabled)
        if assignment is not None:
            # A rebalance must not complete while a pass is in hand: it waits for them to stop.
            assignment.on_revoke = self._passes_stopped
            assignment.watchdog.export(self.metrics.registry, "ingest")

    @property
    def conn(self) -> psycopg.Connection:
        """The calling thread's connection: a worker's own, else the main one."""
        return getattr(self._local, "conn", None) or self._conn

    @conn.setter
    def conn(self, value: psycopg.Connection) -> None:
        self._conn = value

    def token(self) -> int | None:
        """The fence token passes claim mailboxes with (None: no assignment at the moment)."""
        return self.assignment.token if self.assignment else self.generation

    def _serves(self, mailbox_id: int, token: int) -> bool:
        assert self.assignment is not None
        # Only the main thread may poll the consumer (rebalances happen in there): a worker
        # reads the state it left; a revocation waits for the workers (_passes_stopped).
        return self.assignment.serves(mailbox_id, token, poll=not self.scheduler.pool)

    def _between_batches(self, mailbox_id: int, token: int) -> Callable[[], None]:
        def check() -> None:
            self.metrics.last_loop = time.monotonic()  # a long pass is alive, not wedged
            if self.assignment is not None:
                if not self._serves(mailbox_id, token):
                    raise Revoked(f"mailbox {mailbox_id} is no longer served by this process "
                                  "(rebalance or shutdown): the batch in hand is done, the "
                                  "pass stops")
            elif self.stop.is_set():
                raise Revoked("shutting down: the batch in hand is done, the pass stops")

        return check

    def _passes_stopped(self) -> None:
        """Called in a revocation, the token already gone: every pass in hand stops at its next
        batch boundary; wait for that, so no other process starts on a mailbox before."""
        if not self.scheduler.wait_running(REVOKE_WAIT_S):
            log.warning("passes still running %.0f s after a revocation: their checkpoint "
                        "writes are fenced", REVOKE_WAIT_S)

    def _announce(self, mailbox: Mailbox, old_status: str, ended_ok: bool = False) -> None:
        """Publish a status change to the mailboxes topic (only as a group member: the topic
        exists then). Losing one is repaired by the next change or ``mailbox publish``.
        ``ended_ok``: the pass just wrote the status ``ok`` (no need to read it back)."""
        assert mailbox.id is not None
        if self.assignment is None:
            return
        if (OK_STATUS if ended_ok else store.status(self.conn, mailbox.id)) == old_status:
            return
        try:
            announce.publish(self.settings, self.conn, self.producer, [mailbox.id], self.codec)
        except Exception as exc:  # noqa: BLE001 - derived data; the database has the truth
            log.warning("mailbox=%s status change not published: %s", mailbox.address, exc)

    def poll(self, mailbox: Mailbox, profile: Profile | None = None) -> int:
        """One pass over one mailbox; returns messages published. Records the outcome."""
        assert mailbox.id is not None
        if not mailbox.polled:
            return 0  # its mail arrives through its forward mailbox: never logged in to
        if self._refused(mailbox):
            return 0
        token = self.token()
        if token is None:
            return 0
        if self.assignment is not None and not self._serves(mailbox.id, token):
            return 0  # a rebalance since the list was made: maybe not ours any more
        profile = profile or store.profile(self.conn, mailbox.profile_id)
        # The status before the pass, from the database (read with the claim): the list in
        # hand may be older than the last pass (it is read again seldom when long), and a
        # change is announced once.
        before = store.claim_status(self.conn, mailbox.id, token)
        self.conn.commit()
        if before is None:
            log.info("mailbox=%s owned by a newer process; skipped", mailbox.address)
            return 0
        job = Job(self.settings, self.conn, profile, mailbox, token, self.codec,
                  self.producer, self.put_blob, self._between_batches(mailbox.id, token))
        batch = self.settings.ingest_batch_size
        started = time.monotonic()
        result = self._pass(job, profile.protocol, batch)
        if profile.protocol is Protocol.IMAP:  # POP3 has no backlog rows
            self.metrics.mailbox_backlog(mailbox.id, store.backlog(self.conn, mailbox.id))
            self.conn.commit()
        self.metrics.passed(profile.protocol.value, time.monotonic() - started, job.published)
        self._announce(mailbox, before, job.ended_ok)
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
            before = store.status(self.conn, mailbox.id)  # the list in hand may be older
            store.set_status(self.conn, mailbox.id, "refused", gap)
            self.conn.commit()
            self._announce(mailbox, before)
        return True

    def _sole(self, mailbox_id: int) -> bool:
        """Is ``mailbox_id`` the only mailbox this process polls? (Then IDLE may hold its
        connection: there is no other mailbox waiting for the process.)"""
        if len(self._boxes) > 1:
            return False  # the list in hand says no: no need to ask the database
        mine = self.assignment.mailbox_ids() if self.assignment else None
        ids = store.runnable_ids(self.conn, mine, limit=2)
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
            delay = failures.record(self.settings, self.conn, self.metrics, mailbox, exc,
                                    profile.host, profile.port)
            self.scheduler.defer(mailbox.id, delay)
            return 0
        store.set_status(self.conn, mailbox.id, OK_STATUS, f"{n} new message(s) in the last pass")
        store.relaxed_commit(self.conn)  # every pass writes it again
        job.ended_ok = True
        self.conn.commit()
        if n:
            log.info("mailbox=%s published=%d token=%d", mailbox.address, n, job.generation)
        return n

    def revive(self) -> None:
        """Re-enable mailboxes an outage disabled, once their server answers again."""
        mine = self.assignment.mailbox_ids() if self.assignment else None
        revived = revive(self.conn, mine, self._announce)
        if revived:
            self.scheduler.due_now(revived)
            self._list_stale = True  # they are runnable again: in the list at the next turn

    def refresh(self) -> None:
        """Read the runnable mailboxes this process serves, and their profiles (one query
        each: never a look-up per mailbox)."""
        mine = self.assignment.mailbox_ids() if self.assignment else None
        read_at = time.monotonic()
        self._list_stale = False
        self._boxes = [m for m in store.mailboxes(self.conn, runnable_only=True)
                       if mine is None or m.id in mine]
        self._profiles = {p.id: p for p in store.profiles(self.conn) if p.id is not None}
        self.conn.commit()
        self.scheduler.listed(self._boxes, read_at)

    def _work(self, mailbox: Mailbox, profile: Profile) -> None:
        """One pass, in a worker (its own connection) or in the caller's thread."""
        if not self.scheduler.pool:
            self._published += self.poll(mailbox, profile)
            return
        assert self.database is not None
        try:
            self._local.conn = renewed(getattr(self._local, "conn", None), self.database)
            n = self.poll(mailbox, profile)
            with self._count:
                self._published += n
        except LOST as exc:
            # What the pass did not checkpoint is fetched again; this worker waits (others
            # meet the outage on their own), then opens a new connection for the next pass.
            self.stop.wait(self.outage.next_wait(exc))

    def run_once(self) -> int:
        """Poll every runnable mailbox that is due, and wait for the passes; returns messages
        published (counted when passes run in the caller's thread; else see the metrics)."""
        self._published = 0
        self.refresh()
        self.scheduler.submit(self.scheduler.due(time.monotonic()),
                              self._profiles)
        self.scheduler.wait_idle()
        self._raise_worker_error()
        self.conn.commit()
        return self._published

    def _raise_worker_error(self) -> None:
        error, self.scheduler.error = self.scheduler.error, None
        if error is not None:
            raise error

    def observe(self) -> None:
        """Refresh the per-mailbox gauges: enabled and backlog of the mailboxes served here."""
        mine = self.assignment.mailbox_ids() if self.assignment else None
        served = [(i, a, e) for i, a, e in store.polled_states(self.conn)
                  if mine is None or i in mine]
        self.metrics.mailboxes((a, e) for _, a, e in served)
        ids = {i for i, _, _ in served}
        self.metrics.backlog([b for b in store.backlog(self.conn) if b.mailbox_id in ids])
        self.conn.commit()

    def run(self) -> None:
        self.idle = True
        last_revive = 0.0
        tick_ms = self.settings.ingest_idle_tick_ms
        mine: frozenset[int] | None = None
        try:
            while not self.stop.is_set():
                self.metrics.last_loop = time.monotonic()
                try:
                    if self.assignment is not None:
                        # Group membership and mailbox changes; rebalances happen in here (and
                        # wait for the passes in hand: _passes_stopped).
                        self.assignment.poll(tick_ms)
                    served = self.assignment.mailbox_ids() if self.assignment else None
                    # A new set of ids: a mailbox came or went (mailbox_ids keeps its object
                    # otherwise; comparing ten thousand ids at every turn cost more).
                    read = self.list_reads.due() or served is not mine or self._list_stale
                    if read:
                        self.list_reads.run(self.refresh)
                        mine = served
                        if self.list_reads.took_s > SLOW_READ_S:
                            log.info("the list of %d mailboxes took %.1f s to read; the next "
                                     "read in %.0f s", len(self._boxes),
                                     self.list_reads.took_s, self.list_reads.interval_s)
                    # The look for due mailboxes goes over every one of them: once a tick (or
                    # after a read), not at every turn — the group's poll returns early for any
                    # record, and in a first round every pass's status change is one.
                    if read or self.looks.due():
                        self.looks.run(lambda: self.scheduler.submit(
                            self.scheduler.due(time.monotonic()), self._profiles))
                    self._raise_worker_error()
                    if self.gauge_reads.due():
                        self.gauge_reads.run(self.observe)
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
        finally:
            self.stop.set()
            self.scheduler.close()  # each pass in hand finishes its batch first

    def _database_lost(self, exc: Exception) -> None:
        """Wait (SIGTERM still stops it), then reopen the connections; the loop goes on, and
        what the pass did not checkpoint is fetched again."""
        self.outage.wait(exc, sleep=self.stop.wait)
        if self.database is None:
            return
        try:
            self.conn = renewed(self._conn, self.database)
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
