"""Named dashboard accounts with roles, passwords hashed with argon2id (``web_accounts``).

Roles are ordered: a viewer reads every page but the audit log; an operator may also run what
repairs the pipeline (*Test* a mailbox, *Retry* dead letters); an admin may also read the audit
log and disable or enable accounts. Changing a password or disabling an account ends all of its
sessions (``web_sessions``).
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailroom.console.web import audit
from mailroom.errors import ConfigError

NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # longer is no stronger; it only makes hashing a request cost more


class Role(IntEnum):
    viewer = 1
    operator = 2
    admin = 3


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: Role
    enabled: bool
    created_at: datetime
    password_changed_at: datetime


class Passwords:
    """argon2id with the library's default (RFC 9106 low-memory) parameters. Verifying costs
    ~50 ms and 64 MiB, so at most ``parallel`` run at once: a burst of logins queues instead of
    exhausting memory."""

    def __init__(self, parallel: int = 2, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._slots = threading.BoundedSemaphore(parallel)
        # Verified against when the account does not exist, so an unknown name costs the
        # same time as a wrong password (the answer does not tell which names exist).
        self._decoy = self.hasher.hash("decoy password, never an account's")

    def hash(self, password: str) -> str:
        check_password(password)
        with self._slots:
            return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        if len(password) > MAX_PASSWORD:
            return False
        with self._slots:
            try:
                return bool(self.hasher.verify(stored or self._decoy, password)) and \
                    stored is not None
            except (VerificationError, InvalidHashError):
                return False


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ConfigError(f"account name {name!r}: use 1-64 lower-case letters, digits and ._@-, "
                          "starting with a letter or digit")
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"password too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ConfigError(f"password too long: at most {MAX_PASSWORD} characters")


_COLUMNS = "id, name, role, enabled, created_at, password_changed_at"


def _account(row: tuple) -> Account:
    return Account(row[0], row[1], Role[row[2]], row[3], row[4], row[5])


def add(conn: psycopg.Connection, passwords: Passwords, name: str, role: Role,
        password: str) -> Account:
    check_name(name)
    hashed = passwords.hash(password)
    try:
        row = conn.execute(
            f"INSERT INTO web_accounts (name, role, password_hash) VALUES (%s, %s, %s) "
            f"RETURNING {_COLUMNS}", (name, role.name, hashed)).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise ConfigError(f"account {name!r} exists already") from exc
    assert row is not None
    return _account(row)


def find(conn: psycopg.Connection, name: str) -> Account | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM web_accounts WHERE name = %s",
                       (name,)).fetchone()
    return _account(row) if row else None


def get(conn: psycopg.Connection, name: str) -> Account:
    found = find(conn, name)
    if found is None:
        raise ConfigError(f"no account {name!r} (mailroom web user list)")
    return found


def all_accounts(conn: psycopg.Connection) -> list[Account]:
    return [_account(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM web_accounts ORDER BY name").fetchall()]


def authenticate(conn: psycopg.Connection, passwords: Passwords, name: str,
                 password: str) -> Account | None:
    """The account when the name exists, is enabled and the password is right; else None
    (the same answer and about the same time for each way of being wrong)."""
    row = conn.execute(f"SELECT {_COLUMNS}, password_hash FROM web_accounts WHERE name = %s",
                       (name,)).fetchone() if NAME.match(name) else None
    ok = passwords.verify(row[6] if row else None, password)
    if not (ok and row and row[3]):
        return None
    return _account(row[:6])


def set_password(conn: psycopg.Connection, passwords: Passwords, account: Account,
                 password: str) -> None:
    """Store the new password and end every session of the account (a stolen cookie with it)."""
    hashed = passwords.hash(password)
    conn.execute("UPDATE web_accounts SET password_hash = %s, password_changed_at = now() "
                 "WHERE id = %s", (hashed, account.id))
    conn.execute("DELETE FROM web_sessions WHERE account_id = %s", (account.id,))


def set_enabled(conn: psycopg.Connection, account: Account, enabled: bool) -> None:
    conn.execute("UPDATE web_accounts SET enabled = %s WHERE id = %s", (enabled, account.id))
    if not enabled:
        conn.execute("DELETE FROM web_sessions WHERE account_id = %s", (account.id,))


def demo_admin(conn: psycopg.Connection, passwords: Passwords, name: str = "demo"
               ) -> tuple[str, str]:
    """For ``mailroom demo`` only: the admin account ``name`` with a fresh random password
    (a new one on every demo run; earlier sessions end). Returns (name, password)."""
    password = secrets.token_urlsafe(12)
    found = find(conn, name)
    if found is None:
        add(conn, passwords, name, Role.admin, password)
    else:
        set_password(conn, passwords, found, password)
        set_enabled(conn, found, True)
    audit.record(conn, "cli:mailroom demo", "account.password", name, {"role": "admin"})
    return name, password
