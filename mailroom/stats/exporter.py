"""Prometheus gauges of the current windows: ``mailroom_mail_volume{dimension,key,window}``.

"Current" is event time: the window holding the newest arrival this process has counted, not
the wall clock (a replay of last week shows last week's windows). Every mailbox is exported;
senders only the ``top`` biggest per window size, so a spam run of random senders cannot blow
up Prometheus' series count. Each process exports the counters of the partitions it holds;
``sum by`` across processes gives the whole picture (a counter lives in one partition).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge

from mailroom.stats import windows as w


class VolumeGauges:
    def __init__(self, registry: CollectorRegistry, windows: tuple[w.Window, ...],
                 top: int) -> None:
        self.windows = windows
        self.top = top
        self.volume = Gauge(
            "mailroom_mail_volume", "Messages that arrived in the current tumbling window, per "
            "receiving mailbox and per sender (top senders only).",
            ["dimension", "key", "window"], registry=registry)
        self.window_start = Gauge(
            "mailroom_mail_volume_window_start_seconds", "Start of the current window (event "
            "time: the newest arrival counted).", ["window"], registry=registry)

    def refresh(self, volumes: Mapping[str, w.Volume]) -> None:
        counts = w.current(volumes, self.windows, w.newest_ms(volumes.values()))
        self.volume.clear()
        self.window_start.clear()
        for window in self.windows:
            chosen = [c for c in counts if c.window == window.name
                      and c.dimension != w.SENDER]
            chosen += w.top(counts, w.SENDER, window.name, self.top)
            for c in chosen:
                self.volume.labels(c.dimension, c.value, c.window).set(c.messages)
                self.window_start.labels(window.name).set(c.start_ms / 1000)
