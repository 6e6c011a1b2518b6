"""The poll loop every consumer loop shares: the stage runner's and persist's own (persist
cannot be a StageRunner: its offsets live in PostgreSQL), so SIGTERM/SIGINT, liveness and
readiness mean the same for every stage."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from kafka import TopicPartition


class LoopStatus(Protocol):
    """What the loop keeps up to date for the health endpoints."""

    ready: bool  # joined and consuming
    stopping: bool  # set by ``stop``: finish the batch in hand, then leave
    last_loop: float  # monotonic time the loop last turned (``alive``)


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
) -> None:
    """Poll and hand every non-empty batch to ``process`` until ``status.stopping``; not ready
    any more when it returns (or raises)."""
    try:
        while not status.stopping:
            status.last_loop = time.monotonic()
            batch = consumer.poll(timeout_ms=500, max_records=max_records)
            status.ready = bool(consumer.assignment())
            if batch:
                process(batch)
    finally:
        status.ready = False
