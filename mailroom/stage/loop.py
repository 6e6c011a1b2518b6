"""The poll loop of a stage process, its stop signals and its guard against outages: what
SIGTERM/SIGINT, liveness, readiness and a lost dependency mean, the same for every stage."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from kafka import TopicPartition
from kafka.errors import KafkaError

from mailroom.db.outage import LOST, Outage
from mailroom.mailboxes import DirectoryUnavailable


class LoopStatus(Protocol):
    """What the loop keeps up to date for the health endpoints."""

    ready: bool  # joined and consuming
    stopping: bool  # set by ``stop``: finish the batch in hand, then leave
    last_loop: float  # monotonic time the loop last turned (``alive``)


class Dependencies:
    """The outages a batch may hit — PostgreSQL, the broker, the mailbox directory (a stage
    deciding with it may not decide without it: :mod:`mailroom.stage.mailboxcopy`) — and what
    one costs: the batch is redone once the dependency is back (``redo``), never a process exit
    and never a record's attempt."""

    def __init__(self, redo: Callable[[Any, Outage, Exception], None], status: Any) -> None:
        self.database = Outage("batch")
        self.broker = Outage("batch", dependency="the Kafka broker")
        self.directory = Outage("batch", dependency="the mailbox directory")
        self.redo = redo
        self.status = status  # has ``degraded``: why the stage cannot work now, or ''

    def run(self, work: Callable[[], None], batch: Any) -> None:
        """``work()`` on ``batch``; a lost database connection or a broker failure makes it
        ``redo(batch, outage, error)``."""
        try:
            work()
        except LOST as exc:
            self.redo(batch, self.database, exc)
            return
        except KafkaError as exc:  # flush, a dead letter or a commit not acknowledged in time
            self.redo(batch, self.broker, exc)
            return
        except DirectoryUnavailable as exc:
            self.redo(batch, self.directory, exc)
            return
        for outage in (self.database, self.broker, self.directory):
            if outage.away:
                outage.over()
        self.status.degraded = ""


@contextmanager
def stop_signals(stop: Callable[..., Any]) -> Iterator[None]:
    """SIGTERM and SIGINT call ``stop`` inside the block (the old handlers come back after).

    Only from the main thread, where Python allows it: tests run stages in threads and call
    ``stop`` themselves.
    """
    old = (
        {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        if threading.current_thread() is threading.main_thread() else {}
    )
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def poll_until_stopped(
    consumer: Any, status: LoopStatus, max_records: int,
    process: Callable[[dict[TopicPartition, list[Any]]], None],
    after_poll: Callable[[], Any] | None = None,
    behind: Any = None,
    catch_up: Callable[[], None] | None = None,
) -> None:
    """Poll and hand every non-empty batch to ``process`` until ``status.stopping``; not ready
    any more when it returns (or raises). ``after_poll`` is called after every poll, empty or
    not: the group watchdog (:class:`mailroom.groupwatch.Watchdog`), which must look most of
    all when a member gets nothing. Ready means holding partitions, so a member left without
    them says not ready until its watchdog's rejoin brings some.

    ``behind`` is true while a unit waits for the next one's work to be acknowledged and
    committed (:mod:`mailroom.stage.behind`): the poll then takes what the consumer already has
    without waiting, and when that is nothing, ``catch_up`` finishes the unit first — its
    outputs leave at once and its commit is not held back by an idle input."""
    try:
        while not status.stopping:
            status.last_loop = time.monotonic()
            kept = bool(behind)
            batch = consumer.poll(timeout_ms=0 if kept else 500, max_records=max_records)
            if after_poll is not None:
                after_poll()
            status.ready = bool(consumer.assignment())
            if batch:
                process(batch)
            elif kept and catch_up is not None:
                catch_up()
    finally:
        status.ready = False
