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
    def connection(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        depth = getattr(self._held, "depth", 0)
        pooled = depth == 0  # a nested request does not wait for a slot its own thread holds
        if pooled:
            self._slots.acquire()
        self._held.depth = depth + 1
        try:
            conn = self._take() if pooled else connect(self.settings)
            reusable = pooled
            try:
                conn.autocommit = autocommit
                yield conn
                if not conn.autocommit:
                    conn.commit()
            except BaseException:
                if not conn.closed and not conn.broken:
                    try:
                        conn.rollback()
                    except psycopg.Error:
                        reusable = False
                raise
            finally:
                self._give(conn, reusable)
        finally:
            self._held.depth = depth
            if pooled:
                self._slots.release()

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
        if (not reusable or conn.closed or conn.broken
                or conn.info.transaction_status != pq.TransactionStatus.IDLE):
            conn.close()
            return
        with self._lock:
            self._idle.append((time.monotonic(), conn))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, conn in idle:
            conn.close()
