"""When each mailbox is due, and the passes over them: a bounded pool of sessions per server.

Every profile (one email server) gets its own queue of due mailboxes and at most
``max_connections`` worker threads taking from it, each running one pass — one session — at a
time: so the process never holds more sessions to a server than its profile allows, and a slow
server does not hold up another's mailboxes. Threads, because the IMAP and POP3 clients block;
each worker has its own database connection (see :class:`ingest.runner.Ingestor`).

A mailbox is queued at most once (``pending``: queued or running) and becomes due again
``poll_interval_s`` after the start of its last pass, or after its backoff.

Which mailboxes are due is read from a queue ordered by due time (a heap), not by looking at
every mailbox: the loop asks twice a second, and at ten thousand mailboxes a look at each cost
~40 ms of the interpreter's time per ask while the pass threads waited for it. Each listed
mailbox that is not pending has one entry in the heap, never later than its due time (a
backoff or a pass moves the due time later without touching the heap: the entry, popped
early, goes back in at the right time; whatever makes a mailbox due sooner pushes a new
entry, and the older one is skipped when it comes up).
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable

from ingest.model import Mailbox, Profile

log = logging.getLogger(__name__)

NEVER = float("inf")
TAKE_WAIT_S = 0.5  # how often an idle worker looks at the stop flag


class Scheduler:
    """Due times and passes in flight, shared by the main loop and the workers (thread-safe)."""

    def __init__(self, run_pass: Callable[[Mailbox, Profile], None],
                 stop: threading.Event, pool: bool = True) -> None:
        self.run_pass = run_pass
        self.stop = stop
        self.pool = pool  # False: passes run in the caller's thread, one at a time
        self.next_poll: dict[int, float] = {}  # mailbox id -> monotonic time it is due
        self._listed: dict[int, Mailbox] = {}  # the runnable mailboxes, as last listed
        self._heap: list[tuple[float, int]] = []  # (no later than its due time, mailbox id)
        self._entry: dict[int, float] = {}  # mailbox id -> the time of its live heap entry
        self._disabled_at: dict[int, float] = {}  # disabled by a pass (not due), since when
        self._cond = threading.Condition()
        self._pending: set[int] = set()  # queued or running
        self._running: set[int] = set()
        self._queues: dict[int, queue.SimpleQueue[tuple[Mailbox, Profile]]] = {}
        self._workers: dict[int, list[threading.Thread]] = {}
        self.error: BaseException | None = None  # a worker's unforeseen failure, for the loop

    def due(self, now: float) -> list[Mailbox]:
        """The listed mailboxes due at ``now`` and not already queued or running, soonest
        first. The caller submits them (a mailbox returned here is due again only after its
        next pass, or a :meth:`listed`/:meth:`due_now` that says so)."""
        found = []
        with self._cond:
            heap = self._heap
            while heap and heap[0][0] <= now:
                at, key = heapq.heappop(heap)
                if self._entry.get(key) != at:
                    continue  # superseded by a sooner entry
                del self._entry[key]
                mailbox = self._listed.get(key)
                if mailbox is None or key in self._pending:
                    continue  # unlisted: a list read puts it back; pending: its pass does
                due_at = self.next_poll.get(key, 0.0)
                if due_at > now:
                    self._push(key, due_at)  # moved later since: back in at its time
                    continue
                found.append(mailbox)
        return found

    def _push(self, key: int, at: float) -> None:
        """An entry for ``key`` at ``at`` unless it has one as soon (under the lock)."""
        if at == NEVER:
            return  # disabled: listed() or due_now() brings it back
        current = self._entry.get(key)
        if current is not None and current <= at:
            return
        self._entry[key] = at
        heapq.heappush(self._heap, (at, key))

    def submit(self, mailboxes: Iterable[Mailbox], profiles: dict[int, Profile]) -> int:
        """Queue passes over ``mailboxes`` on their servers' pools (or run them here, one by
        one, without a pool). Returns how many were queued or run."""
        n = 0
        for m in mailboxes:
            assert m.id is not None
            profile = profiles[m.profile_id]
            if not self.pool:
                if self.stop.is_set():
                    break
                self._run(m, profile)
                n += 1
                continue
            with self._cond:
                if m.id in self._pending:
                    continue
                self._pending.add(m.id)
                self._queue(profile).put((m, profile))
            n += 1
        return n

    def _queue(self, profile: Profile) -> queue.SimpleQueue[tuple[Mailbox, Profile]]:
        assert profile.id is not None
        q = self._queues.get(profile.id)
        if q is None:
            q = self._queues[profile.id] = queue.SimpleQueue()
        workers = self._workers.setdefault(profile.id, [])
        workers[:] = [t for t in workers if t.is_alive()]
        while len(workers) < profile.max_connections:
            t = threading.Thread(target=self._work, args=(q,), daemon=True,
                                 name=f"ingest-{profile.name}-{len(workers) + 1}")
            workers.append(t)
            t.start()
        return q

    def _work(self, q: queue.SimpleQueue[tuple[Mailbox, Profile]]) -> None:
        while not self.stop.is_set():
            try:
                m, profile = q.get(timeout=TAKE_WAIT_S)
            except queue.Empty:
                continue
            with self._cond:
                if self.stop.is_set():
                    self._finish(m)
                    break
                self._running.add(m.id or 0)
            self._run(m, profile)

    def _run(self, m: Mailbox, profile: Profile) -> None:
        # The interval counts from the start of a pass: a pass that IDLEd through it is
        # followed at once by a full pass (every folder), then IDLE again.
        started = time.monotonic()
        try:
            self.run_pass(m, profile)
        except BaseException as exc:  # noqa: BLE001 - handed to the main loop, which raises it
            with self._cond:
                self.error = self.error or exc
            if not self.pool:
                raise
        finally:
            with self._cond:
                key = m.id or 0
                self.next_poll[key] = max(self.next_poll.get(key, 0.0),
                                          started + profile.poll_interval_s)
                self._finish(m)
                self._push(key, self.next_poll[key])

    def _finish(self, m: Mailbox) -> None:
        self._pending.discard(m.id or 0)
        self._running.discard(m.id or 0)
        self._cond.notify_all()

    def defer(self, mailbox_id: int, seconds: float | None) -> None:
        """Not due for ``seconds`` (a backoff); None: it was disabled, not due until a list
        read after this says it is runnable again (:meth:`listed`)."""
        with self._cond:
            now = time.monotonic()
            if seconds is None:
                self._disabled_at[mailbox_id] = now
            until = NEVER if seconds is None else now + seconds
            self.next_poll[mailbox_id] = max(self.next_poll.get(mailbox_id, 0.0), until)

    def listed(self, mailboxes: Iterable[Mailbox], read_at: float) -> None:
        """The runnable mailboxes as read from the database at ``read_at``: due times of those
        no longer in it are dropped (one that comes back is due at once), and one disabled
        before that read but runnable in it (enabled again) is due at once."""
        listed = {m.id: m for m in mailboxes if m.id is not None}
        with self._cond:
            self._listed = listed
            for key in [k for k in self.next_poll if k not in listed and k not in self._pending]:
                del self.next_poll[key]
                self._disabled_at.pop(key, None)
            for key, at in list(self._disabled_at.items()):
                if key in listed and at < read_at:
                    self.next_poll[key] = 0.0
                    del self._disabled_at[key]
            for key in listed:  # a new one, or one back with its due time dropped: due now
                if key not in self._pending:
                    self._push(key, self.next_poll.get(key, 0.0))

    def due_now(self, mailbox_ids: Iterable[int]) -> None:
        """These are due at once (re-enabled)."""
        with self._cond:
            for key in mailbox_ids:
                self.next_poll.pop(key, None)
                self._disabled_at.pop(key, None)
                if key not in self._pending:
                    self._push(key, 0.0)

    def all_due(self) -> None:
        """Every listed mailbox is due at once (tests, and a bench's fresh round)."""
        self.due_now(list(self._listed))

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is queued or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending or self.stop.is_set(),
                                       timeout_s)

    def wait_running(self, timeout_s: float | None = None) -> bool:
        """Wait until no pass is running (queued ones may start later and check their
        assignment first); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout_s)

    def running(self) -> int:
        with self._cond:
            return len(self._running)

    def close(self, timeout_s: float = 60.0) -> None:
        """After ``stop`` is set: wait for the workers (each finishes the batch in hand)."""
        deadline = time.monotonic() + timeout_s
        for workers in self._workers.values():
            for t in workers:
                t.join(max(0.0, deadline - time.monotonic()))
