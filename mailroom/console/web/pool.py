"""PostgreSQL connections kept open between the dashboard's requests.

Opening a connection costs a server process start and a login — measured under fifty viewers it
was a fifth of the dashboard's time, more than any query — and every page and every session
check needs one. The pool keeps up to ``size`` connections open and lends them out; at most
``size`` are lent at once (PostgreSQL's connection slots are shared with the pipeline), so a
burst of requests waits for a connection instead of opening more. A thread that already holds
one and asks for another (a page calling a helper that opens its own) is not made to wait for
itself: it gets one past the limit, closed when returned.

A lent connection behaves like ``with mailroom.db.connect(...)``: committed when the block
ends normally, rolled back when it raises. A connection that comes back broken or inside a
transaction is closed, not reused; one idle for longer than ``check_after_s`` is checked with a
round trip before it is lent (PostgreSQL may have restarted meanwhile), and one idle for longer
than ``max_idle_s`` is closed.

A request borrows once (:meth:`ConnectionPool.request`): the session check and every block of
its page share the connection the first of them took, returned when the request ends. Measured
at fifty requests in flight, a third of the page threads' time was waiting for a connection,
and a request that borrowed twice (the session check, then the page) queued twice, behind every
request that arrived meanwhile; now a request that has its connection keeps it to its end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import pq

from mailroom.db import connect
from mailroom.settings import Settings


class _Request:
    """One request's borrow: the connection it took first (None: none yet, or its last one
    broke) and whether a block is using it now."""

    def __init__(self) -> None:
        self.conn: psycopg.Connection | None = None
        self.slot = False  # holds one of the pool's slots
        self.busy = False


class ConnectionPool:
    def __init__(self, settings: Settings, size: int = 8, *, check_after_s: float = 5.0,
                 max_idle_s: float = 300.0) -> None:
        self.settings, self.size = settings, size
        self.check_after_s, self.max_idle_s = check_after_s, max_idle_s
        self._idle: list[tuple[float, psycopg.Connection]] = []  # (returned at, connection)
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._held = threading.local()

    @contextmanager
    def request(self) -> Iterator[None]:
        """One borrow for everything this thread does until the block ends: the first
        :meth:`connection` takes a connection (nothing is taken if none is asked for) and every
        later one gets the same, each still committed or rolled back at its own end. A
        :meth:`connection` asked for while that one is in use (nested) gets another, as
        outside a request."""
        if getattr(self._held, "request", None) is not None:
            yield  # already inside one: the outer request's borrow serves
            return
        scope = self._held.request = _Request()
        try:
            yield
        finally:
            self._held.request = None
            if scope.conn is not None:
                self._give(scope.conn, True)
            if scope.slot:
                self._slots.release()

    @contextmanager
    def connection(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        scope: _Request | None = getattr(self._held, "request", None)
        if scope is not None and not scope.busy:
            yield from self._lend_held(scope, autocommit)
            return
        depth = getattr(self._held, "depth", 0)
        # A nested request does not wait for a slot its own thread holds.
        pooled = depth == 0 and scope is None
        if pooled:
            self._slots.acquire()
        self._held.depth = depth + 1
        try:
            conn = self._take() if pooled else connect(self.settings)
            try:
                with self._block(conn, autocommit):
                    yield conn
            finally:
                self._give(conn, pooled)
        finally:
            self._held.depth = depth
            if pooled:
                self._slots.release()

    def _lend_held(self, scope: _Request, autocommit: bool) -> Iterator[psycopg.Connection]:
        if not scope.slot:
            self._slots.acquire()
            scope.slot = True
        if scope.conn is None:
            scope.conn = self._take()
        scope.busy = True
        try:
            with self._block(scope.conn, autocommit):
                yield scope.conn
        finally:
            scope.busy = False
            if not _reusable(scope.conn):  # broken: the request's next block takes another
                scope.conn.close()
                scope.conn = None

    @contextmanager
    def _block(self, conn: psycopg.Connection, autocommit: bool) -> Iterator[None]:
        """Like ``with connect(...)``: committed at the end, rolled back if it raises (closed
        if even that fails)."""
        try:
            conn.autocommit = autocommit
            yield
            if not conn.autocommit:
                conn.commit()
        except BaseException:
            if not conn.closed and not conn.broken:
                try:
                    conn.rollback()
                except psycopg.Error:
                    conn.close()
            raise

    def _take(self) -> psycopg.Connection:
        while True:
            with self._lock:
                if not self._idle:
                    break
                returned, conn = self._idle.pop()
            idle_s = time.monotonic() - returned
            if idle_s > self.max_idle_s:
                conn.close()
                continue
            if idle_s > self.check_after_s:
                try:
                    conn.autocommit = True  # the check opens no transaction
                    conn.execute("SELECT 1")
                except psycopg.Error:
                    conn.close()
                    continue
            return conn
        return connect(self.settings)

    def _give(self, conn: psycopg.Connection, reusable: bool) -> None:
        if not reusable or not _reusable(conn):
            conn.close()
            return
        with self._lock:
            self._idle.append((time.monotonic(), conn))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, conn in idle:
            conn.close()


def _reusable(conn: psycopg.Connection) -> bool:
    return (not conn.closed and not conn.broken
            and conn.info.transaction_status == pq.TransactionStatus.IDLE)
