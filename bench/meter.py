"""CPU seconds and peak memory of process trees, sampled with psutil.

A stage is one or more ``mailroom run STAGE`` processes, each with a worker subprocess, so a
stage's cost is that of whole process trees. A tree's CPU is the sum over its live processes
of user + system time *plus* the time of children they have already reaped (psutil's
``children_user``/``children_system``): that keeps short-lived children counted — PostgreSQL's
postmaster reaps every finished backend, Dovecot's master every finished IMAP session.

Memory is RSS summed over a tree (shared pages of forked processes count twice: an upper
bound), sampled every ``interval`` seconds; the peak is per tree, i.e. per stage process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

MB = 1024 * 1024
Roots = Callable[[], dict[str, list[int]]]  # group name -> root pids (read at every sample)


@dataclass
class Usage:
    cpu_s: float = 0.0
    peak_rss: int = 0  # bytes, the largest single tree of the group


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_rss(pid: int) -> tuple[float, int]:
    cpu, rss = 0.0, 0
    for p in _tree(pid):
        try:
            with p.oneshot():
                t = p.cpu_times()
                cpu += t.user + t.system + t.children_user + t.children_system
                rss += p.memory_info().rss
        except psutil.Error:
            continue  # ended meanwhile: its parent's children_* has it once reaped
    return cpu, rss


@dataclass
class Meter:
    """Samples the groups' trees in a background thread between :meth:`start` and
    :meth:`stop`; CPU is the difference between the first and last sample of each tree."""

    roots: Roots
    interval: float = 0.5
    _first: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _peak: dict[int, int] = field(default_factory=dict)
    _group: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Meter:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="meter", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            self._sample()

    def _sample(self) -> None:
        for group, pids in self.roots().items():
            for pid in pids:
                cpu, rss = tree_cpu_rss(pid)
                if rss == 0:
                    continue  # gone: keep its last sample
                self._group[pid] = group
                self._first.setdefault(pid, cpu)
                self._last[pid] = cpu
                self._peak[pid] = max(self._peak.get(pid, 0), rss)

    def now(self) -> dict[str, Usage]:
        """The usage so far, without stopping."""
        self.sample()
        return self._usage()

    def stop(self) -> dict[str, Usage]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        return self._usage()

    def _usage(self) -> dict[str, Usage]:
        with self._lock:
            return self._sum()

    def _sum(self) -> dict[str, Usage]:
        out: dict[str, Usage] = {}
        for pid, group in self._group.items():
            u = out.setdefault(group, Usage())
            u.cpu_s += self._last[pid] - self._first[pid]
            u.peak_rss = max(u.peak_rss, self._peak[pid])
        return out
