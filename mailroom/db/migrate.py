"""A plain-SQL migration runner (docs/database.md says why not alembic or yoyo).

Migrations are the files ``mailroom/db/migrations/NNNN_name.sql``. :func:`migrate` applies
the pending ones in version order, each in its own transaction together with its row in
``schema_migrations`` (version, name, sha256 of the file, applied_at), so a migration is either
fully applied and recorded or not at all. An applied file whose sha256 has changed since is an
error: the database would no longer match what the file says. A session advisory lock, keyed on
the target schema, makes a second process that migrates at the same time wait and then find
nothing left to do.

Everything runs in the connection's current schema (the first in ``search_path``); migration
files never name a schema, so tests can apply them into a schema of their own.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import pq

from mailroom.errors import MailroomError

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# Created before anything else and never by a migration file: the runner needs it to know
# what has been applied, including to apply 0001.
_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    sha256     text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(MailroomError):
    """The migration files or the database's migration history are inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    sha256: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class Applied:
    version: int
    name: str
    sha256: str
    applied_at: datetime


def default_directory() -> Path:
    return Path(str(resources.files("mailroom.db.migrations")))


def discover(directory: Path | None = None) -> list[Migration]:
    """Every migration file, in version order. A stray ``.sql`` file or a duplicate version
    is an error rather than silently skipped or applied in an arbitrary order."""
    directory = directory or default_directory()
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path}: migration files are named NNNN_lower_case_name.sql"
            )
        version = int(match.group(1))
        data = path.read_bytes()
        if version in found:
            raise MigrationError(
                f"{path}: version {version:04d} is also used by {found[version].label}.sql "
                "(each stream owns a numbering range; see docs/database.md)"
            )
        found[version] = Migration(
            version, match.group(2), data.decode("utf-8"), hashlib.sha256(data).hexdigest()
        )
    return [found[v] for v in sorted(found)]


@contextmanager
def _read_only(conn: psycopg.Connection) -> Iterator[None]:
    """Leave the connection as found: a read on an idle non-autocommit connection opens a
    transaction, which would otherwise stay open (holding a snapshot) after we return."""
    started_idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
    try:
        yield
    finally:
        if started_idle and not conn.autocommit:
            conn.rollback()


def _table_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    return bool(row and row[0])


def applied_migrations(conn: psycopg.Connection) -> list[Applied]:
    """What the database (its current schema) says has been applied, in version order."""
    with _read_only(conn):
        if not _table_exists(conn):
            return []
        rows = conn.execute(
            "SELECT version, name, sha256, applied_at FROM schema_migrations ORDER BY version"
        ).fetchall()
    return [Applied(*row) for row in rows]


def verify(applied: list[Applied], files: list[Migration]) -> None:
    """Raise if an applied migration's file changed or was renamed since it was applied."""
    by_version = {m.version: m for m in files}
    for done in applied:
        current = by_version.get(done.version)
        if current is None:
            # A newer release's migration: this code is older than the database. Not an
            # error (rolling upgrades run old and new code side by side), only worth a word.
            log.warning("migration %04d_%s is applied but unknown to this version",
                        done.version, done.name)
            continue
        if current.sha256 != done.sha256 or current.name != done.name:
            raise MigrationError(
                f"migration {current.label} was changed after it was applied "
                f"(applied as {done.version:04d}_{done.name} sha256 {done.sha256[:12]}, "
                f"file now sha256 {current.sha256[:12]}); never edit an applied migration: "
                "restore the file and add a new migration instead"
            )


def pending_migrations(
    conn: psycopg.Connection, directory: Path | None = None
) -> list[str]:
    """Labels (``NNNN_name``) of the migrations not yet applied; raises if history diverged."""
    files = discover(directory)
    applied = applied_migrations(conn)
    verify(applied, files)
    done = {a.version for a in applied}
    return [m.label for m in files if m.version not in done]


def migrate(conn: psycopg.Connection, directory: Path | None = None) -> list[str]:
    """Apply every pending migration; return the labels applied (empty: already current).

    The connection must not be inside a transaction: each migration gets its own.
    """
    files = discover(directory)
    status = conn.info.transaction_status
    if status != pq.TransactionStatus.IDLE:
        raise MigrationError("migrate() needs a connection that is not inside a transaction")
    was_autocommit = conn.autocommit
    conn.autocommit = True
    try:
        # Keyed on the schema so tests migrating their own schemas do not queue behind
        # each other, while two processes migrating the same schema do.
        conn.execute(
            "SELECT pg_advisory_lock(hashtextextended('mailroom.migrate:' || current_schema(), 0))"
        )
        try:
            return _apply_pending(conn, files)
        finally:
            conn.execute(
                "SELECT pg_advisory_unlock("
                "hashtextextended('mailroom.migrate:' || current_schema(), 0))"
            )
    finally:
        conn.autocommit = was_autocommit


def _apply_pending(conn: psycopg.Connection, files: list[Migration]) -> list[str]:
    if conn.execute("SELECT current_schema()").fetchone() == (None,):
        raise MigrationError(
            "no schema to migrate into: search_path names no existing schema"
        )
    conn.execute(_BOOKKEEPING)
    # Read under the lock: another process may have applied some while we waited.
    applied = applied_migrations(conn)
    verify(applied, files)
    done = {a.version for a in applied}
    ran: list[str] = []
    for migration in files:
        if migration.version in done:
            continue
        log.info("applying migration %s", migration.label)
        try:
            with conn.transaction():
                conn.execute(migration.sql)  # no parameters: the whole file as one script
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.sha256),
                )
        except psycopg.Error as exc:
            raise MigrationError(f"migration {migration.label} failed: {exc}") from exc
        ran.append(migration.label)
    return ran
