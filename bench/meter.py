"""CPU seconds and peak memory of process trees, sampled with psutil.

A stage is one or more ``mailroom run STAGE`` processes, each with a worker subprocess, so a
stage's cost is that of whole process trees. A tree's CPU is the sum over its live processes
of user + system time *plus* the time of children they have already reaped (psutil's
``children_user``/``children_system``): that keeps short-lived children counted — PostgreSQL's
postmaster reaps every finished backend, Dovecot's master every finished IMAP session.

Memory is RSS summed over a tree (shared pages of forked processes count twice: an upper
bound), sampled every ``interval`` seconds (1 s); the peak is per tree, i.e. per stage process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

MB = 1024 * 1024
Roots = Callable[[], dict[str, list[int]]]  # group name -> root pids (read at every sample)


@dataclass
class Usage:
    cpu_s: float = 0.0
    peak_rss: int = 0  # bytes, the largest single tree of the group


def host_ticks() -> tuple[int, int]:
    """The machine's CPU time so far in clock ticks, all of it and the part the hypervisor gave
    to other guests while this one had work (``steal``, /proc/stat); (0, 0) where unreadable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal guest guest_nice: guest time is in user's
    return sum(fields[:8]), (fields[7] if len(fields) > 7 else 0)


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's time the host took between two :func:`host_ticks`."""
    total = after[0] - before[0]
    return (after[1] - before[1]) / total if total > 0 else 0.0


def children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids, from one scan of the process table."""
    out: dict[int, list[int]] = {}
    for p in psutil.process_iter(["ppid"]):
        out.setdefault(p.info["ppid"] or 0, []).append(p.pid)
    return out


def tree_pids(pid: int, children: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_cpu_rss(pid: int, children: dict[int, list[int]]) -> tuple[float, int]:
    cpu, rss = 0.0, 0
    for p in _processes(tree_pids(pid, children)):
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
    interval: float = 1.0  # each sample scans the process table: keep the bench itself light
    _first: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _peak: dict[int, int] = field(default_factory=dict)
    _group: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _started: float = 0.0

    def start(self) -> Meter:
        self._started = time.time()
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
        children = children_map()
        for group, pids in self.roots().items():
            for pid in pids:
                cpu, rss = tree_cpu_rss(pid, children)
                if rss == 0:
                    continue  # gone: keep its last sample
                self._group[pid] = group
                # A process born after the start (a connection's backend found late) counts
                # whole; one already running counts from its first sample.
                self._first.setdefault(pid, 0.0 if _born_after(pid, self._started) else cpu)
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



def _born_after(pid: int, when: float) -> bool:
    try:
        return psutil.Process(pid).create_time() >= when
    except psutil.Error:
        return False


def _processes(pids: list[int]) -> list[psutil.Process]:
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return out


def server_peers(clients: dict[str, list[int]], ports: dict[str, int]) -> dict[str, list[int]]:
    """The local server processes serving the TCP connections of each group of client process
    trees, as ``"<service>:<group>" -> pids`` for each service in ``ports`` (PostgreSQL
    backends, Dovecot IMAP sessions): a service's cost charged to the stage that caused it,
    and nothing of other work on the same service. One look at the system's sockets: costly
    (~0.1–0.5 s), so callers refresh it seldom (:class:`Every`)."""
    try:
        conns = psutil.net_connections("tcp")
    except psutil.Error:
        return {}  # not allowed to see other users' sockets: no attribution
    children = children_map()
    group_of = {pid: group for group, roots in clients.items() for root in roots
                for pid in tree_pids(root, children)}
    service_of = {port: service for service, port in ports.items()}
    client: dict[int, str] = {}  # client's local port -> "<service>:<group>"
    for c in conns:
        if c.pid in group_of and c.raddr and c.raddr.port in service_of:
            client[c.laddr.port] = f"{service_of[c.raddr.port]}:{group_of[c.pid]}"
    out: dict[str, list[int]] = {}
    for c in conns:
        if c.pid and c.laddr.port in service_of and c.raddr and c.raddr.port in client:
            out.setdefault(client[c.raddr.port], []).append(c.pid)
    return out


@dataclass
class Every:
    """``fn()``, computed again only when ``seconds`` have passed since the last time."""

    fn: Callable[[], dict[str, list[int]]]
    seconds: float
    _at: float = -1e9
    _value: dict[str, list[int]] = field(default_factory=dict)

    def __call__(self) -> dict[str, list[int]]:
        now = time.monotonic()
        if now - self._at >= self.seconds:
            self._value, self._at = self.fn(), now
        return self._value
