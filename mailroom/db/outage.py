"""PostgreSQL going away is an outage, not a failure of the work in hand.

A restart or a cut network shows as psycopg's ``OperationalError`` (``AdminShutdown`` is one)
or ``InterfaceError`` on a connection that is gone, and as
:class:`~mailroom.db.connection.DatabaseUnavailable` from :func:`~mailroom.db.connect` while the
server is still down. Every stage treats them alike: the work in hand is redone once the
database answers again, the stage waits meanwhile with a bounded backoff (a log line says what
it waits for), its health endpoint says not ready, and it never exits for it. Such a failure is
never a message's fault, so it is never counted as a message's attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg

from mailroom.db.connection import DatabaseUnavailable

log = logging.getLogger(__name__)

#: What a lost or unreachable database raises.
LOST: tuple[type[Exception], ...] = (
    psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable,
)

FIRST_WAIT_S = 0.5
#: The longest single wait: short enough that a consumer polls well within its poll interval.
MAX_WAIT_S = 10.0


def usable(conn: psycopg.Connection | None) -> bool:
    """Whether ``conn`` can still carry a statement (not closed by us, not cut by the server)."""
    return conn is not None and not conn.closed and not conn.broken


def renewed(conn: psycopg.Connection | None,
            connect: Callable[[], psycopg.Connection]) -> psycopg.Connection:
    """``conn`` while it is usable, else a new connection (the old one closed)."""
    if usable(conn):
        assert conn is not None
        return conn
    if conn is not None:
        conn.close()
    return connect()


class Outage:
    """One process's wait for a dependency (PostgreSQL unless named): a doubling backoff,
    capped, reset when it is back."""

    def __init__(self, what: str, first_s: float = FIRST_WAIT_S,
                 max_s: float = MAX_WAIT_S, dependency: str = "PostgreSQL") -> None:
        self.what = what  # the work redone afterwards, for the log line
        self.dependency = dependency
        self.first_s = first_s
        self.max_s = max_s
        self.since: float | None = None
        self.reason = ""
        self._waits = 0

    @property
    def away(self) -> bool:
        return self.since is not None

    def next_wait(self, exc: BaseException) -> float:
        """Record the failure; the seconds to wait before trying again (logged)."""
        if self.since is None:
            self.since = time.monotonic()
        cause = str(exc).strip() or type(exc).__name__
        self.reason = f"{self.dependency} unavailable: {type(exc).__name__}: {cause}"
        wait = min(self.max_s, self.first_s * 2 ** self._waits)
        self._waits += 1
        log.warning("%s; waiting %.1f s for %s to come back, then the %s is redone",
                    self.reason, wait, self.dependency, self.what)
        return wait

    def wait(self, exc: BaseException, sleep: Callable[[float], object] = time.sleep) -> None:
        sleep(self.next_wait(exc))

    def over(self) -> None:
        """The database answered again (call after work that needed it succeeded)."""
        if self.since is not None:
            log.warning("%s is back after %.1f s: carrying on", self.dependency,
                        time.monotonic() - self.since)
        self.since, self.reason, self._waits = None, "", 0


def connected(connect: Callable[[], psycopg.Connection], what: str,
              sleep: Callable[[float], object] = time.sleep) -> psycopg.Connection:
    """``connect()``, waiting out an outage: a stage process started while PostgreSQL is down
    or restarting (a supervisor restarting it at that moment) waits for it instead of
    exiting."""
    outage = Outage(what)
    while True:
        try:
            conn = connect()
        except LOST as exc:
            outage.wait(exc, sleep)
            continue
        outage.over()
        return conn
