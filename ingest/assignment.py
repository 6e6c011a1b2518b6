"""Which mailboxes this process serves: its consumer group's share of ``<prefix>.mailboxes``.

Every ``mailroom run ingest`` joins the group ``<prefix>.ingest`` on the compacted mailboxes
topic. A mailbox is served by the process that owns the partition its key (the mailbox id)
hashes to; the process reads its partitions from the beginning, on every assignment, to know
those mailboxes (offsets are never committed: the topic is a table, not a queue). Kafka's
group protocol decides who owns what; there is no home-made coordinator.

Group membership is not a lock. Each assignment takes a fresh fence token from the database
sequence ``ingest_generation_seq`` and the runner claims a mailbox with it before a pass;
checkpoint writes succeed only while the mailbox's ``owner_generation`` is that token
(:mod:`ingest.store`). Kafka's generation id is logged beside it but is not the token: it
restarts from 1 when the group is deleted, and tokens must only grow.

Handing over: rebalance callbacks run inside ``consumer.poll``, and this process polls only
between batches (:meth:`Assignment.serves`), so on a revocation the batch in hand is finished,
the pass stops, and only then does the process rejoin — the rebalance cannot complete, and no
other process can start on those mailboxes, before this one has stopped serving them.

PostgreSQL away during a rebalance: the new assignment gets no token in the callback (an
exception there would end ``poll`` with a KafkaError); its mailboxes are not polled until the
token is taken at a later :meth:`Assignment.poll`, once the database answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from kafka import ConsumerRebalanceListener, KafkaConsumer

from ingest import store
from mailroom.codec import Codec
from mailroom.db.outage import LOST, renewed
from mailroom.errors import MailroomError
from mailroom.groupwatch import Watchdog
from mailroom.records.mailbox import MailboxRecord
from mailroom.settings import Settings

log = logging.getLogger(__name__)


class Revoked(MailroomError):  # noqa: N818 - the name says what happened
    """The mailbox is no longer this process's (rebalance or shutdown): the pass stops."""


class Assignment(ConsumerRebalanceListener):
    """This process's partitions of the mailboxes topic, the mailboxes in them, its token."""

    def __init__(self, settings: Settings, consumer: KafkaConsumer,
                 token_conn: psycopg.Connection, codec: Codec | None = None,
                 stop: threading.Event | None = None,
                 connect: Callable[[], psycopg.Connection] | None = None) -> None:
        self.settings = settings
        self.consumer = consumer
        self.token_conn = token_conn  # autocommit: a token is taken inside consumer.poll
        self.codec = codec or Codec.from_settings(settings)
        self.stop = stop or threading.Event()
        self.topic = settings.topic("mailboxes")
        self.view: dict[int, dict[str, MailboxRecord]] = {}  # partition -> mailbox id -> record
        # The ids in the view, built again only when one comes or goes (most records are a
        # mailbox's new status): the loop asks at every turn, ten thousand ids each time.
        self._ids: frozenset[int] | None = None
        self.token: int | None = None
        self.token_owed = False  # assigned while PostgreSQL was away: no token taken yet
        self.connect = connect  # reopens token_conn (autocommit) after an outage; None: never
        # Called in a revocation once the token is gone: waits until the passes in hand (other
        # threads') stopped, so the rebalance completes only after them.
        self.on_revoke: Callable[[], None] | None = None
        # Left without partitions too long (a join lost, a leader slow to see new partitions):
        # warn and join again, unless the group simply has more members than partitions.
        self.watchdog = Watchdog(settings, consumer, [self.topic], listener=self,
                                 held=self.partitions)

    @classmethod
    def join(cls, settings: Settings, token_conn: psycopg.Connection, client_id: str,
             stop: threading.Event | None = None,
             connect: Callable[[], psycopg.Connection] | None = None) -> Assignment:
        from mailroom.kafka import make_consumer

        consumer = make_consumer(settings, group_id(settings), client_id=client_id)
        assignment = cls(settings, consumer, token_conn, stop=stop, connect=connect)
        consumer.subscribe([assignment.topic], listener=assignment)
        return assignment

    # --- rebalance callbacks (run inside consumer.poll) ---------------------------------------
    def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self.view.pop(tp.partition, None)
        self._ids = None
        # The token stands for one assignment; whatever is kept is claimed again under a new one.
        self.token = None
        self.token_owed = False
        if self.on_revoke is not None:
            self.on_revoke()
        if revoked:
            log.info("mailboxes partitions revoked: %s",
                     sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        tps = sorted(assigned, key=lambda tp: tp.partition)
        for tp in tps:
            self.view.setdefault(tp.partition, {})
        self._ids = None
        if tps:
            self.consumer.seek_to_beginning(*tps)
        try:
            self.token = store.new_generation(self.token_conn)
        except LOST as exc:
            self.token_owed = True
            log.warning("mailboxes partitions assigned: %s; no fence token yet (%s): none of "
                        "their mailboxes is polled until PostgreSQL is back",
                        [tp.partition for tp in tps], str(exc).strip())
            return
        log.info("mailboxes partitions assigned: %s fence token %d (kafka generation %s)",
                 [tp.partition for tp in tps], self.token, self._kafka_generation())

    def _kafka_generation(self) -> int:
        try:
            return int(self.consumer.group_metadata().generation_id)
        except Exception:  # noqa: BLE001 - for the log only
            return -1

    # --- reading the topic --------------------------------------------------------------------
    def poll(self, timeout_ms: int = 0) -> None:
        """Take part in the group (heartbeats are a background thread; rebalances happen here)
        and apply new mailbox records to the view. Takes the token an outage owed (raising
        what :data:`~mailroom.db.outage.LOST` names while the database is still away)."""
        if self.token_owed:
            self.token = store.new_generation(self.token_conn)
            self.token_owed = False
            log.info("mailboxes partitions %s: fence token %d taken after the outage",
                     self.partitions(), self.token)
        for tp, records in self.consumer.poll(timeout_ms=timeout_ms).items():
            part = self.view.get(tp.partition)
            if part is None:  # revoked meanwhile
                continue
            for r in records:
                mailbox_id = r.key.decode()
                if r.value is None:  # tombstone: the mailbox was deleted
                    if part.pop(mailbox_id, None) is not None:
                        self._ids = None
                else:
                    if mailbox_id not in part:
                        self._ids = None
                    part[mailbox_id] = self.codec.decode_record(r.value, MailboxRecord)
        self.watchdog.check()

    def mailbox_ids(self) -> frozenset[int]:
        """Every mailbox in the assigned partitions. Whether one is runnable is the database's
        word (the truth; a record on the topic may lag behind it), not the topic's. The same
        object until a mailbox comes or goes (``is`` tells a change)."""
        if self._ids is None:
            self._ids = frozenset(int(i) for part in self.view.values() for i in part)
        return self._ids

    def serves(self, mailbox_id: int, token: int, poll: bool = True) -> bool:
        """Between batches: may the pass that claimed ``mailbox_id`` with ``token`` go on?
        ``poll``: take part in the group first (only the thread that owns the consumer may:
        a pass in a worker thread reads the state the main thread's polls left)."""
        if self.stop.is_set():
            return False
        if poll:
            self.poll(0)
        return token == self.token and any(
            str(mailbox_id) in part for part in list(self.view.values())
        )

    def ensure(self, mailbox_id: int, token: int) -> None:
        if not self.serves(mailbox_id, token):
            raise Revoked(f"mailbox {mailbox_id} is no longer served by this process "
                          "(rebalance or shutdown): the batch in hand is done, the pass stops")

    def reconnect(self) -> None:
        """Reopen the token connection if an outage cut it (raises while still away)."""
        if self.connect is not None:
            self.token_conn = renewed(self.token_conn, self.connect)

    def partitions(self) -> list[int]:
        return sorted(self.view)

    def close(self) -> None:
        # Leaves the group at once, so the partitions move without waiting for the session
        # timeout.
        self.consumer.close()


def group_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}.ingest"


def partition_of(settings: Settings, mailbox_id: int, partitions: int | None = None) -> int:
    """The partition a mailbox's record lands in (kafka-python's and Java's default)."""
    from kafka.partitioner.default import murmur2

    n = partitions or settings.topic_partitions
    return (murmur2(str(mailbox_id).encode()) & 0x7FFFFFFF) % n

