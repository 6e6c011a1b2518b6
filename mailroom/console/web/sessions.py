"""Server-side sessions (``web_sessions``): a random token in the cookie, its SHA-256 in
PostgreSQL with the account, the session's CSRF token and an expiry.

Being on the server is what makes logout mean something: deleting the row ends the session
everywhere, including for whoever copied the cookie; so does a password change or disabling the
account. Every replica of the dashboard reads the same table, so sessions need no shared secret.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from mailroom.console.web.accounts import Role

COOKIE = "mailroom_session"
SESSION_TTL = timedelta(hours=12)
# What we issue (token_urlsafe(32)); anything else in the cookie is not looked up at all.
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class Session:
    """Who is logged in: what every page and check after login needs."""

    token_hash: str
    account_id: int
    name: str
    role: Role
    csrf: str

    def may(self, role: Role) -> bool:
        return self.role >= role


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def create(conn: psycopg.Connection, account_id: int, address: str,
           ttl: timedelta = SESSION_TTL) -> str:
    """A new session; returns the token for the cookie (stored only as its hash)."""
    token = secrets.token_urlsafe(32)
    # Expired rows go when someone logs in: the table stays as small as the live sessions.
    conn.execute("DELETE FROM web_sessions WHERE expires_at < now()")
    conn.execute(
        "INSERT INTO web_sessions (token_hash, account_id, csrf, address, expires_at) "
        "VALUES (%s, %s, %s, %s, now() + %s)",
        (_hash(token), account_id, secrets.token_urlsafe(32), address[:200], ttl))
    return token


def lookup(conn: psycopg.Connection, token: str | None) -> Session | None:
    if not token or not TOKEN.match(token):
        return None
    row = conn.execute(
        "SELECT s.token_hash, a.id, a.name, a.role, s.csrf FROM web_sessions s "
        "JOIN web_accounts a ON a.id = s.account_id "
        "WHERE s.token_hash = %s AND s.expires_at > now() AND a.enabled",
        (_hash(token),)).fetchone()
    return Session(row[0], row[1], row[2], Role[row[3]], row[4]) if row else None


def revoke(conn: psycopg.Connection, session: Session) -> None:
    conn.execute("DELETE FROM web_sessions WHERE token_hash = %s", (session.token_hash,))


def cookie(value: str, *, secure: bool, max_age: int | None = None) -> str:
    """HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure whenever
    the request came over TLS (directly or through a trusted proxy)."""
    age = int(SESSION_TTL.total_seconds()) if max_age is None else max_age
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{flags}"
