"""Each stage's throughput and lag over the last hour and day, for the charts.

A sampler thread in the dashboard takes the stage monitor's lag report once a minute and
stores one row per stage per minute in ``web_stage_samples`` (0061): the committed offsets
summed over partitions, messages and seconds behind. Throughput is the difference of committed
offsets between consecutive samples. Rows older than :data:`KEEP` are deleted as new ones
arrive, so the table stays bounded (about 2,900 rows per stage); with several replicas the
primary key keeps one row per stage and minute. The history begins when the dashboard does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import psycopg

from mailroom.console.web.data.memo import Refreshing
from mailroom.console.web.data.stages import StageMonitor
from mailroom.console.web.pool import ConnectionPool
from mailroom.db import connect
from mailroom.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

KEEP = timedelta(days=2)
INTERVAL_S = 60.0
GAP = timedelta(minutes=5)  # samples further apart than this are not joined into a rate


@dataclass(frozen=True)
class Sample:
    minute: datetime
    committed: int | None
    messages_behind: int
    seconds_behind: float


def sample_once(settings: Settings, monitor: StageMonitor) -> int:
    """Store this minute's sample of every stage; returns how many rows were written."""
    snap = monitor.snapshot()
    if snap.report is None:
        return 0
    r = snap.report
    rows: list[tuple[str, int | None, int, float]] = [
        (g.stage, sum(p.committed or 0 for p in g.partitions), g.messages_behind,
         g.seconds_behind) for g in r.groups if not g.error]
    rows.append(("ingest", None, sum(b.backlog or 0 for b in r.mailboxes),
                 max((b.seconds_behind for b in r.mailboxes), default=0.0)))
    with connect(settings) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO web_stage_samples (stage, minute, committed, messages_behind, "
                "seconds_behind) VALUES (%s, date_trunc('minute', now()), %s, %s, %s) "
                "ON CONFLICT DO NOTHING", rows)
        conn.execute("DELETE FROM web_stage_samples WHERE minute < now() - %s", (KEEP,))
        conn.commit()
    return len(rows)


def samples(conn: psycopg.Connection, since: timedelta) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for stage, *rest in conn.execute(
            "SELECT stage, minute, committed, messages_behind, seconds_behind "
            "FROM web_stage_samples WHERE minute >= now() - %s ORDER BY stage, minute",
            (since,)).fetchall():
        out.setdefault(stage, []).append(Sample(*rest))
    return out


def throughput(points: list[Sample]) -> list[tuple[datetime, float | None]]:
    """Messages per second between consecutive samples (None across a gap or an offset reset,
    e.g. a replay: no rate is made up there)."""
    out: list[tuple[datetime, float | None]] = []
    for before, after in zip(points, points[1:], strict=False):
        seconds = (after.minute - before.minute).total_seconds()
        if (before.committed is None or after.committed is None or seconds <= 0
                or after.minute - before.minute > GAP or after.committed < before.committed):
            out.append((after.minute, None))
        else:
            out.append((after.minute, (after.committed - before.committed) / seconds))
    return out


class SampleCache:
    """The samples of each range read at most every ``min_interval_s`` for all viewers, and
    drawn with each read: they change once a minute, a day of them is thousands of rows to read
    per page load, and drawing a day's charts costs ~30 ms of CPU (more under load). The drawing
    is part of the read, so it runs where the read does — behind the page, on the thread that
    refreshes the snapshot — and no viewer waits for it (before, the first viewer after each
    read drew the charts while the page waited: the slowest history pages)."""

    def __init__(self, pool: ConnectionPool, min_interval_s: float = 20.0,
                 stale_s: float | None = None) -> None:
        self.pool, self.min_interval_s = pool, min_interval_s
        self.stale_s = 3 * min_interval_s if stale_s is None else stale_s
        self._lock = threading.Lock()
        # One per range (the page's few fixed ones): a day's read does not hold up an hour's.
        self._ranges: dict[timedelta, Refreshing[Any]] = {}

    def drawn(self, since: timedelta, draw: Callable[[dict[str, list[Sample]]], T]) -> T:
        """``draw`` of the samples since ``since``, as of the last read; one ``draw`` per range
        (the page's, always the same for a range)."""
        with self._lock:
            found = self._ranges.setdefault(since, Refreshing(self.min_interval_s,
                                                              stale_s=self.stale_s))
        return cast(T, found.get(lambda: draw(self._read(since))))

    def _read(self, since: timedelta) -> dict[str, list[Sample]]:
        with self.pool.connection(autocommit=True) as conn:
            return samples(conn, since)


class Sampler:
    """The background thread: a sample every ``interval_s`` until :meth:`stop`."""

    def __init__(self, settings: Settings, monitor: StageMonitor,
                 interval_s: float = INTERVAL_S) -> None:
        self.settings, self.monitor, self.interval_s = settings, monitor, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sample_once(self.settings, self.monitor)
            except Exception as exc:  # noqa: BLE001 - a lost sample is a gap in a chart
                log.warning("web: stage sample failed: %s: %s", type(exc).__name__, exc)
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
