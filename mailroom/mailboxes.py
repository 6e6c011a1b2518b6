"""The mailbox directory: every mailbox's configuration as the compacted ``mailboxes`` topic has it.

Ingest owns the mailboxes (its tables in PostgreSQL) and publishes each one's state, keyed by
its id, to ``<prefix>.mailboxes`` after every change (``ingest/announce.py``); compaction keeps
the latest record of every mailbox. The other stages read that configuration here — unwrap's
forwarders, route's mailbox owners — and never ingest's tables: a stage's tables are its own.

How fresh: :meth:`MailboxDirectory.sync` reads the topic from the earliest offset on its first
call, and on every later call what was appended since, up to the topic's end *as the broker
answers at that call*. So a record acknowledged before ``sync`` starts is always in what it
returns — which is what a caller needs before it decides on mail for a mailbox: a mailbox added
(or approved) a moment ago is on the topic before any mail that depends on it was written, so
syncing after that mail was read finds it, with no waiting on a clock. A sync with nothing new
costs one offsets request.

Who reads it: the stream stages' *runner* process, before each poll batch is handled, and its
worker processes get a copy of what it read (:mod:`mailroom.stage.mailboxcopy`: the workers
import no Kafka client); the console's commands (doctor, the rules preview) read it directly.
No thread of its own: the read happens in the caller's thread, when it needs the answer. A
failed read (broker away, an unreadable record) raises :class:`DirectoryUnavailable` and forgets
what was read, so the next call starts from the beginning again rather than resume past a record
it could not apply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.errors import MailroomError, TransientError
from mailroom.records.mailbox import MailboxRecord
from mailroom.settings import Settings

log = logging.getLogger(__name__)

#: How long one sync may take before it gives up (a first read of 10,000 mailboxes takes about
#: a second; longer means the broker is not answering).
READ_TIMEOUT_S = 30.0
_POLL_MS = 200


class DirectoryUnavailable(TransientError):
    """The directory could not be read to the topic's end now (broker away, the topic missing,
    a record this process cannot read): nothing may be decided with it until it can."""


class MailboxDirectory:
    """Mailbox id → :class:`MailboxRecord`, read from the compacted mailboxes topic."""

    def __init__(self, settings: Settings, codec: Codec | None = None,
                 consumer: Callable[[], KafkaConsumer] | None = None,
                 timeout_s: float = READ_TIMEOUT_S) -> None:
        self.topic = settings.topic("mailboxes")
        self._settings = settings
        self._codec = codec or Codec.from_settings(settings)
        self._make_consumer = consumer or (lambda: _consumer(settings))
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._consumer: KafkaConsumer | None = None
        self._records: dict[str, MailboxRecord] = {}
        self._view: Mapping[str, MailboxRecord] = MappingProxyType({})

    def sync(self) -> Mapping[str, MailboxRecord]:
        """Read the topic up to its end as of now; every mailbox id → its latest record.

        The same mapping object is returned while nothing changed (callers may rebuild what
        they derive from it only when it is a new one)."""
        with self._lock:
            try:
                changed = self._read_to_end()
            except (KafkaError, MailroomError, OSError) as exc:
                self._forget()
                raise DirectoryUnavailable(f"mailbox directory: {self.topic} not read: "
                                           f"{type(exc).__name__}: {exc}") from exc
            if changed:
                self._view = MappingProxyType(dict(self._records))
            return self._view

    def records(self) -> Mapping[str, MailboxRecord]:
        """What the last sync read, without asking the broker."""
        return self._view

    def close(self) -> None:
        with self._lock:
            self._forget()

    def _read_to_end(self) -> bool:
        consumer, fresh = self._consumer, False
        if consumer is None:
            consumer = self._consumer = self._make_consumer()
            fresh = True
        if fresh:
            parts = consumer.partitions_for_topic(self.topic)
            if not parts:
                raise MailroomError(f"topic {self.topic} does not exist (mailroom topics create)")
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            self._records.clear()
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        ends: dict[TopicPartition, int] = consumer.end_offsets(tps)
        changed = fresh
        deadline = time.monotonic() + self._timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading to the end took over {self._timeout_s:g} s")
            for records in consumer.poll(timeout_ms=_POLL_MS).values():
                for r in records:
                    self._apply(r)
                    changed = True
        return changed

    def _apply(self, record: Any) -> None:
        mailbox_id = record.key.decode()
        if record.value is None:  # a tombstone: the mailbox was deleted
            self._records.pop(mailbox_id, None)
        else:
            # An unreadable record raises: deciding on the mailbox's older state would be a
            # silent error (an unknown schema means this process must be upgraded).
            self._records[mailbox_id] = self._codec.decode_record(record.value, MailboxRecord)

    def _forget(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception as exc:  # noqa: BLE001 - closing a broken client: say, go on
                log.warning("mailbox directory: closing its consumer failed: %s", exc)
        self._consumer = None
        self._records.clear()
        self._view = MappingProxyType({})


def _consumer(settings: Settings) -> KafkaConsumer:
    # No group: the directory reads the whole topic in every process and commits nothing.
    config = kafka.consumer_config(settings, "unused", client_id="mailroom-mailbox-directory")
    config["group_id"] = None
    return KafkaConsumer(**config)
