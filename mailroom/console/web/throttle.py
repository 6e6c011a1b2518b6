"""Login rate limits per account name and per client address, counted in PostgreSQL
(``web_login_failures``) so every replica of the dashboard sees the same failures.

Each login (and each "current password" on the password form) is an :class:`Attempt`. Before
the password is looked at, :meth:`LoginThrottle.attempt` checks both keys under a transaction
lock per key: when a key already holds its limit of failures within ``window_s``, the attempt
is refused (429) until the oldest of them ages out — guessing stays slow, and a flood of
attempts costs no password hashing. Otherwise the attempt is *written down as a failure first*
and only then is the password checked; :meth:`LoginThrottle.succeeded` takes it back (and clears
the account's failures, not the address's). Counting before checking is what makes the limit
exact: a guesser who fires many attempts at once, at one replica or at several, gets the limit
and not one more, because each attempt holds its place in the count while its hash runs. A
process that dies mid-check leaves a failure behind: it fails closed.

Rows older than the window are deleted as new ones are written, so the table holds at most
the failures of one window; a refused attempt writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

KINDS = ("account", "address")


@dataclass(frozen=True)
class Attempt:
    """One login attempt: refused when ``wait_s`` > 0 (seconds until it may try again), else
    counted as a failure (``ids``: its rows) until :meth:`LoginThrottle.succeeded`."""

    account: str
    address: str
    wait_s: float = 0.0
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        return self.wait_s > 0


class LoginThrottle:
    def __init__(self, per_account: int = 5, per_address: int = 20,
                 window_s: float = 900.0) -> None:
        self.limits = {"account": per_account, "address": per_address}
        self.window_s = window_s

    def attempt(self, conn: psycopg.Connection, account: str, address: str) -> Attempt:
        """Refuse, or count the attempt as a failure; commits its own short transaction (the
        other replicas must see the count before this one's password check begins)."""
        keys = {"account": account, "address": address}
        with conn.transaction():
            # Always the account's lock before the address's: no two attempts wait for each
            # other in opposite orders.
            for kind in KINDS:
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                             (f"mailroom.console.web.login:{kind}:{keys[kind]}",))
            wait = max(self._wait(conn, kind, keys[kind]) for kind in KINDS)
            if wait > 0:
                return Attempt(account, address, wait)
            conn.execute("DELETE FROM web_login_failures WHERE at < now() - "
                         "make_interval(secs => %s)", (self.window_s,))
            ids = {kind: conn.execute(
                "INSERT INTO web_login_failures (kind, key) VALUES (%s, %s) RETURNING id",
                (kind, keys[kind])).fetchone()[0] for kind in KINDS}
        return Attempt(account, address, 0.0, ids)

    def _wait(self, conn: psycopg.Connection, kind: str, key: str) -> float:
        """Seconds until the oldest of the newest ``limit`` failures in the window ages out
        (0: fewer than ``limit`` in the window)."""
        row = conn.execute(
            "SELECT extract(epoch FROM at + make_interval(secs => %(w)s) - now()) "
            "FROM web_login_failures WHERE kind = %(k)s AND key = %(key)s "
            "AND at > now() - make_interval(secs => %(w)s) "
            "ORDER BY at DESC OFFSET %(skip)s LIMIT 1",
            {"w": self.window_s, "k": kind, "key": key, "skip": self.limits[kind] - 1},
        ).fetchone()
        return max(0.0, float(row[0])) if row else 0.0

    def succeeded(self, conn: psycopg.Connection, attempt: Attempt) -> None:
        """The password was right: the attempt was no failure, and the account's earlier
        failures are forgotten (the address's stay: one right password from an address does
        not excuse its guesses at other accounts). Commits."""
        with conn.transaction():
            conn.execute("DELETE FROM web_login_failures WHERE (kind = 'account' AND key = %s) "
                         "OR id = ANY(%s)", (attempt.account, list(attempt.ids.values())))
