"""Recent emails and cases from persist's tables, and one email's trace."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from kafka import TopicPartition
from psycopg.rows import dict_row

from mailroom.codec import Codec
from mailroom.console.web.data.memo import Refreshing
from mailroom.settings import Settings


@dataclass
class EmailView:
    id: int
    subject: str
    sender: str
    received_at: datetime | None
    sent_at: datetime | None
    message_id: str | None
    dedupe_key: str
    correlation_method: str
    regarding: str
    copy_kind: str
    collision: bool
    automated: str
    mailboxes: str
    # Correlation candidates the customer guard refused, and why ('' for none): persist's
    # review column (a copied header from another customer's thread, docs/route.md).
    correlation_refused: str = ""
    # (role, address, record, outcome)
    parties: list[tuple[str, str, str, str]] = field(default_factory=list)


@dataclass
class CaseView:
    id: int
    number: str
    title: str
    customer: str
    queue_id: str
    status: str
    created_at: datetime
    originating_activity_id: int | None
    reopened_count: int


@dataclass
class TraceStep:
    at: datetime
    stage: str
    event: str
    detail: dict[str, Any]
    source: str


_EMAIL_SQL = (
    # Receiving mailboxes by address (ingest's table) where known, else by their id.
    "SELECT a.*, COALESCE((SELECT string_agg(COALESCE(i.address, m.mailbox_id) || "
    "  CASE WHEN m.forwarded_by <> '' THEN ' (forwarded by ' || m.forwarded_by || ')' "
    "  ELSE '' END, ', ' ORDER BY m.mailbox_id) FROM activity_mailboxes m "
    "  LEFT JOIN ingest_mailboxes i ON i.id::text = m.mailbox_id "
    "  WHERE m.activity_id = a.id), '') AS mailbox_list "
    "FROM email_activities a WHERE a.deleted_at IS NULL "
)


def _email(row: dict[str, Any]) -> EmailView:
    return EmailView(
        id=row["id"], subject=row["subject"], sender=row["sender"],
        received_at=row["received_at"], sent_at=row["sent_at"], message_id=row["message_id"],
        dedupe_key=row["dedupe_key"], correlation_method=row["correlation_method"],
        regarding=row["regarding"], copy_kind=row["copy_kind"], collision=row["collision"],
        automated=row["automated"], mailboxes=row["mailbox_list"],
        correlation_refused=row["correlation_refused"],
    )


def recent_emails(conn: psycopg.Connection, limit: int = 50) -> list[EmailView]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_EMAIL_SQL + "ORDER BY a.id DESC LIMIT %s", (limit,)).fetchall()
    return [_email(r) for r in rows]


def refused_emails(conn: psycopg.Connection, limit: int = 50) -> list[EmailView]:
    """The review list: the emails whose correlation the customer guard refused, the most
    recently changed first (the partial index ``email_activities_refused`` serves it)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_EMAIL_SQL + "AND a.correlation_refused <> '' "
                           "ORDER BY a.updated_at DESC LIMIT %s", (limit,)).fetchall()
    return [_email(r) for r in rows]


def email(conn: psycopg.Connection, activity_id: int) -> EmailView | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_EMAIL_SQL + "AND a.id = %s", (activity_id,)).fetchone()
    if row is None:
        return None
    view = _email(row)
    view.parties = [tuple(r) for r in conn.execute(
        "SELECT role, address, record, outcome FROM activity_parties WHERE activity_id = %s "
        "ORDER BY array_position(ARRAY['from','to','cc','bcc'], role), address", (activity_id,)
    ).fetchall()]
    return view


_CASE_SQL = (
    "SELECT id, number, title, customer, queue_id, status, created_at, "
    "originating_activity_id, reopened_count FROM cases WHERE deleted_at IS NULL "
)


def recent_cases(conn: psycopg.Connection, limit: int = 50) -> list[CaseView]:
    rows = conn.execute(_CASE_SQL + "ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
    return [CaseView(*r) for r in rows]


def case(conn: psycopg.Connection, case_id: int) -> CaseView | None:
    row = conn.execute(_CASE_SQL + "AND id = %s", (case_id,)).fetchone()
    return CaseView(*row) if row else None


def case_emails(conn: psycopg.Connection, case_id: int) -> list[EmailView]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_EMAIL_SQL + "AND a.regarding = %s ORDER BY a.sent_at, a.id",
                           (f"case:{case_id}",)).fetchall()
    return [_email(r) for r in rows]



class TracerPool:
    """Reused ``mailroom trace`` readers: a new one spends most of a second on its broker
    connections and metadata before its first answer, a warm one answers in a tenth of that.
    A reader serves one request at a time (Kafka consumers are not thread-safe); at most
    ``size`` exist, so many pages asking at once queue for a warm one instead of each opening
    its own connections to every broker.

    The trace topic's end offsets are read once for every viewer, at most every
    ``ends_max_age_s``: where persist has stored the trace up to them (a running pipeline's
    normal state) a story is persist's table alone — a few indexed queries on a pooled
    connection, no broker round trip. Measured under fifty viewers, each story reading the
    topic and the raw record made the email page the slowest of all."""

    def __init__(self, settings: Settings, codec: Callable[[], Codec], size: int = 4,
                 ends_max_age_s: float = 1.0) -> None:
        self.settings, self._codec, self.size = settings, codec, size
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        # Read by the viewer who finds it old, never behind the page: the read uses that
        # viewer's reader, whose consumer no other thread may touch meanwhile.
        self._ends: Refreshing[dict[TopicPartition, int]] = Refreshing(ends_max_age_s)

    def story(self, dedupe_key: str,
              db: Callable[[], AbstractContextManager[psycopg.Connection]] | None = None
              ) -> tuple[list[TraceStep], str]:
        """The email's story exactly as ``mailroom trace`` tells it
        (:mod:`mailroom.console.ops.trace`): persist's trace table and the trace topic, linked
        through raw identities; plus the one-line summary of where it stopped. ``db``: a pooled
        connection for persist's tables (else the reader opens its own)."""
        from mailroom.console.ops import trace as ops_trace

        with self._slots:
            with self._lock:
                tracer = self._idle.pop() if self._idle else None
            try:
                tracer = tracer or ops_trace.Tracer(self.settings, self._codec())
                try:
                    ends: dict[TopicPartition, int] | None = self._ends.get(tracer.trace_ends)
                except Exception:  # noqa: BLE001 - then the topic is read as without it
                    ends = None
                with db() if db is not None else contextlib.nullcontext() as conn:
                    steps = tracer.story(dedupe_key, conn, ends)
            except Exception as exc:  # noqa: BLE001 - the record is worth showing without it
                if tracer is not None:
                    tracer.close()  # it may be broken: never back into the pool
                return [], f"trace unavailable: {type(exc).__name__}: {exc}"
            with self._lock:
                self._idle.append(tracer)
        return ([TraceStep(s.at, s.stage, s.event, dict(s.detail), s.where) for s in steps],
                ops_trace.where_it_stopped(steps))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for tracer in idle:
            tracer.close()
