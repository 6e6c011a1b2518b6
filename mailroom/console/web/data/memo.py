"""Values derived from one snapshot of a source, kept until the source changes; and the
snapshots themselves, read at most so often for every viewer (:class:`Refreshing`).

The charts are pure functions of a snapshot every viewer shares (a day of stage samples read at
most every 20 s, the stats table at most every 5 s), yet drawing them is the dashboard's most
expensive Python — measured under fifty viewers, the stage history alone was two fifths of the
server's CPU, all of it under the GIL. So each chart is drawn once per snapshot and kept with
it: the next viewer gets the same markup until a new snapshot is read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Memo(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Hashable, tuple[object, T]] = {}  # key → (source, value)
        self._aged: dict[Hashable, Refreshing[T]] = {}

    def get(self, key: Hashable, source: object, compute: Callable[[], T]) -> T:
        """``compute()``'s value for ``key``, kept as long as ``source`` is the same object
        (held here with the value, so its identity cannot be reused meanwhile). Keys are few —
        a chart per range, per mailbox — so nothing else bounds the memo."""
        with self._lock:
            entry = self._values.get(key)
        if entry is not None and entry[0] is source:
            return entry[1]
        value = compute()  # outside the lock: two first viewers may both draw; same result
        with self._lock:
            self._values[key] = (source, value)
        return value

    def fresh(self, key: Hashable, max_age_s: float, compute: Callable[[], T]) -> T:
        """``compute()``'s value for ``key``, kept for ``max_age_s`` (the first call's, per key)
        and computed by one viewer at a time: for a query whose answer changes slowly and costs
        a scan (the last arrival through each forwarding rule)."""
        with self._lock:
            kept = self._aged.setdefault(key, Refreshing(max_age_s))
        return kept.get(compute)


class Refreshing(Generic[T]):
    """A value read at most every ``min_interval_s`` for all viewers together (the stage lag,
    the stats table, the dead-letter topic, the stage samples), one read at a time. While one
    viewer reads a stale value anew (a second or more under load: a new consumer, a scan), the
    others get the previous value instead of queueing behind it; only when there is none yet
    (the first viewer, or after :meth:`invalidate`) do they wait for the read. A read that
    raises leaves the previous value in place and raises to its own viewer only.

    With ``stale_s``, a value younger than that is not read anew by a viewer at all: the viewer
    who finds it past ``min_interval_s`` starts the read on a thread of its own and gets the
    value it found, like everyone else — under fifty viewers the one who happened to trigger a
    refresh waited a second for it, which was the slowest one in a hundred page loads. A value
    older than ``stale_s`` (nobody looked for a while) is read while the viewer waits, as
    without it, so no page shows a value older than ``stale_s`` plus a read. A read that raises
    there is logged and leaves the previous value."""

    def __init__(self, min_interval_s: float, stale_s: float = 0.0) -> None:
        self.min_interval_s = min_interval_s
        self.stale_s = stale_s
        self._lock = threading.Lock()
        # (read at, value) in one attribute: read without the lock, never torn.
        self._entry: tuple[float, T] | None = None

    def get(self, read: Callable[[], T]) -> T:
        """The value, read anew by ``read()`` if it is older than ``min_interval_s``; the same
        object until then (:class:`Memo` keys charts on it)."""
        entry = self._entry
        if entry is not None:
            age = time.monotonic() - entry[0]
            if age < self.min_interval_s:
                return entry[1]
            if not self._lock.acquire(blocking=False):
                return entry[1]  # another viewer is reading it anew
            if age < self.stale_s:
                try:
                    threading.Thread(target=self._read_behind, args=(read,), daemon=True,
                                     name="web-refresh").start()
                except BaseException:
                    self._lock.release()
                    raise
                return entry[1]  # the thread releases the lock
        else:
            self._lock.acquire()
        try:
            entry = self._entry  # read meanwhile, while this viewer waited?
            if entry is None or time.monotonic() - entry[0] >= self.min_interval_s:
                value = read()
                entry = self._entry = (time.monotonic(), value)
            return entry[1]
        finally:
            self._lock.release()

    def _read_behind(self, read: Callable[[], T]) -> None:
        """A read for the viewers to come (the lock is held for it by the viewer who began it)."""
        try:
            value = read()
            self._entry = (time.monotonic(), value)
        except Exception as exc:  # noqa: BLE001 - the previous value stays; nobody waits for it
            log.warning("web: refreshing a snapshot failed: %s: %s", type(exc).__name__, exc)
        finally:
            self._lock.release()

    def invalidate(self) -> None:
        """Forget the value: the next viewer waits for a new read. Waits for a read in flight
        (which may predate what made the value wrong) and forgets its result too."""
        with self._lock:
            self._entry = None
