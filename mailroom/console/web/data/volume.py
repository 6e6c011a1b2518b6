"""Mail volume for the stages page: the stats table read from its changelog
(:func:`mailroom.stats.read.read_volumes`), sampled at most every few seconds, reduced to the
current windows (event time: the window of the newest arrival counted, as in the gauges)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailroom.console.web.data.memo import Refreshing
from mailroom.settings import Settings
from mailroom.stats import windows as w
from mailroom.stats.read import read_volumes


@dataclass
class VolumeSnapshot:
    windows: tuple[str, ...] = ()  # window names as configured, e.g. ("1h", "1d")
    starts: dict[str, int] = field(default_factory=dict)  # window → current start (ms)
    mailboxes: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    senders: list[tuple[str, dict[str, int]]] = field(default_factory=list)  # top N
    undecodable: dict[str, int] = field(default_factory=dict)
    # Per mailbox, every kept window of the smallest size: start (ms) → messages (the charts).
    arrivals: dict[str, dict[int, int]] = field(default_factory=dict)
    arrival_window: w.Window | None = None
    error: str = ""


def summarise(volumes: dict[str, w.Volume], windows: tuple[w.Window, ...],
              top: int) -> VolumeSnapshot:
    """Per mailbox and for the ``top`` biggest senders: messages in each current window."""
    counts = w.current(volumes, windows, w.newest_ms(volumes.values()))
    names = tuple(x.name for x in windows)
    by: dict[str, dict[str, dict[str, int]]] = {d: {} for d in w.DIMENSIONS}
    starts: dict[str, int] = {}
    for c in counts:
        by[c.dimension].setdefault(c.value, {})[c.window] = c.messages
        starts[c.window] = c.start_ms

    def ranked(dimension: str) -> list[tuple[str, dict[str, int]]]:
        # Biggest in the longest window first (the steadiest ranking), then by address.
        return sorted(by[dimension].items(),
                      key=lambda kv: (-kv[1].get(names[-1], 0), -max(kv[1].values()), kv[0]))

    smallest = min(windows, key=lambda x: x.size_ms) if windows else None
    arrivals = {
        value: {int(start): n for start, n in volume.get(smallest.name, {}).items()}
        for key, volume in volumes.items() if smallest
        for dimension, value in [w.split_key(key)] if dimension == w.MAILBOX
    }
    return VolumeSnapshot(names, starts, ranked(w.MAILBOX), ranked(w.SENDER)[:top],
                          by[w.UNDECODABLE].get("", {}), arrivals, smallest)


class VolumeMonitor:
    def __init__(self, settings: Settings, min_interval_s: float = 5.0) -> None:
        self.settings = settings
        # One viewer reads the changelog (a new consumer: a second or more under load); the
        # others get the previous snapshot meanwhile instead of queueing behind it.
        self._last: Refreshing[VolumeSnapshot] = Refreshing(min_interval_s,
                                                             stale_s=3 * min_interval_s)

    @property
    def min_interval_s(self) -> float:
        return self._last.min_interval_s

    @min_interval_s.setter
    def min_interval_s(self, seconds: float) -> None:
        self._last.min_interval_s, self._last.stale_s = seconds, 3 * seconds

    def snapshot(self) -> VolumeSnapshot:
        return self._last.get(self._read)

    def _read(self) -> VolumeSnapshot:
        try:
            windows = w.parse_windows(self.settings.stats_windows)
            return summarise(read_volumes(self.settings), windows,
                             self.settings.stats_top_senders)
        except Exception as exc:  # noqa: BLE001 - any failure is shown on the page
            return VolumeSnapshot(error=f"{type(exc).__name__}: {exc}")
