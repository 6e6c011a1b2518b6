"""How a unit of work is made durable: the one thing that differs between the stream stages.

The runner (:mod:`mailroom.stage.runner`) does everything else the same way for every stage —
attempt counting, budgets, retries, dead letters, trace events, liveness, outages, SIGTERM. What
it commits, and where, is a small strategy object (dramatiq's way: a plug-in with a few typed
hooks), called around each *unit* — the happy path's whole poll batch, or one suspect record:

1. :meth:`Commit.ready` before a batch: ``False`` sends the batch back (it comes again with the
   next poll) — persist claims partitions assigned while PostgreSQL was away;
2. :meth:`Commit.transaction` wraps the unit's handling: nothing for :class:`KafkaCommit`, one
   PostgreSQL transaction for persist (its handler writes inside it);
3. the runner has the broker acknowledge everything the unit sent (outputs, trace events, dead
   letters), then, still inside the transaction, :meth:`Commit.store` — persist writes its
   offsets there, fenced, so they commit with the effects;
4. :meth:`Commit.commit` after the transaction: Kafka's offset commit (for persist a copy, for
   ``mailroom lag``);
5. :meth:`Commit.rewind` after an outage: where the batch's partitions start again.

``listener`` is given to ``subscribe``: persist claims its partitions on assignment and seeks to
the offsets stored in PostgreSQL.

Why not Kafka transactions (exactly-once read-process-write)? kafka-python 3.0 implements them
(``send_offsets_to_transaction`` with ``group_metadata()`` for KIP-447 fencing), but the support
is young (offsets support landed in 2025, abort fixes in 2026, a report of ``commit()`` ignoring
its timeout after a broker blip, dpkp/kafka-python#3121) and would buy little: the end effect is
already exactly once through persist, while every downstream reader would have to read
committed only and a process killed mid-transaction would hold back the last stable offset of
its output partitions until ``transaction.timeout.ms``. Should it earn trust, it is one more
commit strategy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from kafka import TopicPartition
from kafka.errors import CommitFailedError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)

Batch = Mapping[TopicPartition, list[Any]]




class Commit(Protocol):
    #: Told of assignments and revocations (``subscribe(listener=...)``); None: nothing to do.
    listener: Any

    def ready(self, batch: Batch) -> bool:
        """Before a batch: False when the batch must come again instead (already sought)."""
        ...

    def transaction(self) -> AbstractContextManager[Any]:
        """The scope of one unit's effects; rolled back when the unit raises."""
        ...

    def store(self, offsets: Mapping[TopicPartition, int], handled: bool) -> None:
        """Inside the transaction, after the broker acknowledged the unit's sends. ``handled``:
        records of the stage's main input went through the handler (the unit was not only a
        dead letter, nor only side inputs such as persist's trace events). May raise
        :class:`~mailroom.errors.Fenced`."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """After the transaction committed."""
        ...

    def rewind(self, batch: Batch, paused: Collection[tuple[str, int]]) -> None:
        """After an outage: seek the batch's partitions (assigned, not paused) to where the
        batch starts again."""
        ...


def as_kafka(offsets: Mapping[TopicPartition, int]) -> dict[TopicPartition, OffsetAndMetadata]:
    return {tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}


def seek_to_first(consumer: Any, batch: Batch, paused: Collection[tuple[str, int]],
                  at: Mapping[tuple[str, int], int | None] | None = None) -> None:
    """Seek each of the batch's partitions that is still assigned and not paused to ``at`` (its
    offset there, when known), else to its first record."""
    assigned = consumer.assignment()
    for tp, records in batch.items():
        if records and tp in assigned and (tp.topic, tp.partition) not in paused:
            stored = (at or {}).get((tp.topic, tp.partition))
            consumer.seek(tp, records[0].offset if stored is None else stored)


class KafkaCommit:
    """At least once: offsets committed to Kafka once the broker acknowledged everything the
    unit produced (unwrap, route, every stage whose effects are records on topics)."""

    listener = None

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer

    def ready(self, batch: Batch) -> bool:
        return True

    def transaction(self) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def store(self, offsets: Mapping[TopicPartition, int], handled: bool) -> None:
        pass  # nothing is stored beside the outputs: Kafka's commit is the only record

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            self.consumer.commit(as_kafka(offsets))
        except (CommitFailedError, RebalanceInProgressError) as exc:
            # The group rebalanced under us (evicted), or is rebalancing (a member joined or
            # left): the partitions' next owner — maybe this process — starts again from the last
            # commit, so the batch is redelivered; not fatal. Never waited out as an outage: the
            # rebalance completes only in the next poll, and a backoff before it kept the whole
            # group without partitions until the broker evicted this member.
            log.warning("offset commit refused (%s): the batch will be redelivered", exc)

    def commit_later(self, offsets: Mapping[TopicPartition, int]) -> None:
        """:meth:`commit` without waiting for the coordinator's answer: a unit with the next one
        right behind it (:mod:`mailroom.stage.behind`). Commits go in order on the one
        coordinator connection; one refused is logged like :meth:`commit`'s, and the batch is
        redelivered to whoever owns the partitions next."""
        if offsets:
            self.consumer.commit_async(as_kafka(offsets), callback=_refused_later)

    def rewind(self, batch: Batch, paused: Collection[tuple[str, int]]) -> None:
        seek_to_first(self.consumer, batch, paused)


def _refused_later(offsets: Any, response: Any) -> None:
    if isinstance(response, Exception):
        log.warning("offset commit refused (%s): the batch will be redelivered", response)
