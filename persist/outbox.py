"""The change feed's outbox in PostgreSQL (``record_outbox``, migration 0063): what is left to
publish, marking it published, pruning, and the backlog doctor reports.

The rows are written by triggers (0063, 0072) in the transaction that changes a record, so nothing
here runs in persist's path; the relay (:mod:`persist.feed`) is the only reader and writer.

Order: rows are read by ``seq`` among those *not yet published*, never "after the last seq
published" — a transaction that took its seq earlier may commit later than one with a higher
seq, and a high-water mark would skip it for good. Per record, seq is no order: two
transactions may change one record through different tables without waiting for each other (a
party added by persist, the activity edited in the CRM), and the later to commit may hold the
lower seq. The relay sends each record's state as read when it publishes, so per key the topic's
last message is the newest committed state whatever the seqs say.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

#: The first half of the relay's advisory lock; the second is its schema's (:func:`lock_key`).
LOCK_CLASS = 0x6D666565  # "mfee"


@dataclass(frozen=True)
class Noted:
    seq: int
    record_type: str
    record_id: str
    writer: str
    noted_at: datetime

    @property
    def key(self) -> tuple[str, str]:
        return self.record_type, self.record_id


def pending(conn: psycopg.Connection, limit: int) -> list[Noted]:
    rows = conn.execute(
        "SELECT seq, record_type, record_id, writer, noted_at FROM record_outbox "
        "WHERE published_at IS NULL ORDER BY seq LIMIT %s", (limit,),
    ).fetchall()
    return [Noted(*row) for row in rows]


def latest_per_record(rows: list[Noted]) -> list[Noted]:
    """The last noted change of each record among ``rows``, in seq order: one publish each
    (the state read then includes every earlier change)."""
    last: dict[tuple[str, str], Noted] = {}
    for row in rows:
        last[row.key] = row
    return sorted(last.values(), key=lambda n: n.seq)


def mark_published(conn: psycopg.Connection, seqs: list[int]) -> int:
    cur = conn.execute(
        "UPDATE record_outbox SET published_at = now() WHERE seq = ANY(%s) "
        "AND published_at IS NULL", (seqs,),
    )
    return cur.rowcount


def prune(conn: psycopg.Connection, keep: timedelta) -> int:
    """Forget rows published longer ago than ``keep`` (they are on the topic)."""
    cur = conn.execute(
        "DELETE FROM record_outbox WHERE published_at < now() - %s", (keep,),
    )
    return cur.rowcount


@dataclass(frozen=True)
class Backlog:
    unpublished: int
    oldest_age_s: float  # of the oldest unpublished row; 0 when there is none
    last_published_age_s: float | None  # since the relay last published; None: never
    relay_running: bool  # a relay holds the lock of this schema


def lock_key(conn: psycopg.Connection) -> tuple[int, int]:
    """The relay's advisory lock for the connection's schema: one relay per schema publishes;
    the second half is a positive int so ``pg_locks.objid`` shows it as is."""
    schema = conn.execute("SELECT current_schema()").fetchone()
    assert schema is not None
    return LOCK_CLASS, zlib.crc32(str(schema[0]).encode()) & 0x7FFFFFFF


def backlog(conn: psycopg.Connection) -> Backlog:
    row = conn.execute(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(noted_at)), 0) "
        "FROM record_outbox WHERE published_at IS NULL",
    ).fetchone()
    assert row is not None
    last = conn.execute(
        "SELECT extract(epoch FROM now() - max(published_at)) FROM record_outbox "
        "WHERE published_at IS NOT NULL",
    ).fetchone()
    cls, obj = lock_key(conn)
    held = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 2",
        (cls, obj),
    ).fetchone()
    return Backlog(
        unpublished=int(row[0]), oldest_age_s=float(row[1]),
        last_published_age_s=None if last is None or last[0] is None else float(last[0]),
        relay_running=bool(held and held[0]),
    )
