"""Stage lag for the live page: the ops lag report, sampled at most every few seconds.

:func:`mailroom.console.ops.lag.report` compares two samples to tell *lagging* (the committed offset
moves) from *stalled* (it does not). A dashboard is asked again and again, so the monitor keeps
the previous sample and passes it in — no sleep per request — and derives throughput from the
same two samples (committed offsets advanced per second).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from mailroom.console.ops import lag
from mailroom.console.ops.groups import Cluster
from mailroom.console.web.data.memo import Refreshing
from mailroom.settings import Settings


@dataclass
class StageSnapshot:
    report: lag.LagReport | None
    throughput: dict[str, float] = field(default_factory=dict)  # stage → messages/s
    error: str = ""


def _committed(groups: list[lag.GroupLag]) -> dict[str, int]:
    return {g.stage: sum(p.committed or 0 for p in g.partitions) for g in groups}


class StageMonitor:
    def __init__(self, settings: Settings, min_interval_s: float = 2.0) -> None:
        self.settings = settings
        self._lock = threading.Lock()  # the Kafka clients are not thread-safe
        self._cluster: Cluster | None = None
        self._previous: list[lag.GroupLag] | None = None
        self._previous_at = 0.0
        # While one viewer samples the cluster (a second or more under load), the others get
        # the previous sample instead of queueing behind it; only the very first one waits.
        # A snapshot up to three intervals old is read anew behind the page, not before it.
        self._last: Refreshing[StageSnapshot] = Refreshing(min_interval_s,
                                                           stale_s=3 * min_interval_s)

    def snapshot(self) -> StageSnapshot:
        return self._last.get(self._read)

    def _read(self) -> StageSnapshot:
        with self._lock:
            try:
                return self._sample()
            except Exception as exc:  # noqa: BLE001 - any failure is shown on the page
                self.close_cluster()
                return StageSnapshot(None, error=f"{type(exc).__name__}: {exc}")

    def _sample(self) -> StageSnapshot:
        if self._cluster is None:
            self._cluster = Cluster(self.settings)
        first = self._previous is None
        before = _committed(self._previous or [])
        started = time.monotonic()
        report = lag.report(self.settings, interval_s=1.0, previous=self._previous,
                            cluster=self._cluster)
        elapsed = (started - self._previous_at) if not first else report.interval_s
        now = _committed(report.groups)
        throughput = {} if first else {
            stage: max(0, now[stage] - before.get(stage, now[stage])) / max(elapsed, 1e-3)
            for stage in now
        }
        self._previous, self._previous_at = report.groups, time.monotonic()
        return StageSnapshot(report, throughput)

    def close_cluster(self) -> None:
        if self._cluster is not None:
            try:
                self._cluster.close()
            finally:
                self._cluster = None

    def close(self) -> None:
        with self._lock:
            self.close_cluster()
