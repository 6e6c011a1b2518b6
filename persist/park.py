"""Parked plans and watches: the answer may change when an email with a Message-ID lands.

A plan whose conditions wait on Message-IDs is remembered (``persist_pending_plans``, its
encoding as read from the topic) with one watch per awaited Message-ID. It is *parked* when its
activity step itself waits (nothing of it is applied yet); otherwise what the current answer
said is applied and the plan waits only to be re-evaluated. When an email with a watched
Message-ID is stored, the watching plans are applied again in the same transaction (under the
same thread lock): applying is idempotent and the correlation prefers earlier candidates, so
the end state is the one the parent-first order gives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import psycopg

from mailroom.db import statements
from mailroom.records.action import Plan
from persist.batchrows import BatchRows

log = logging.getLogger(__name__)


def _ident(plan: Plan) -> tuple[str, str, str]:
    return plan.dedupe_key, plan.content_hash, plan.receiving_mailbox


def remember(
    conn: psycopg.Connection, plan: Plan, encoded: bytes, received_ms: int,
    waiting: Iterable[str], parked: bool, known: BatchRows | None = None,
) -> None:
    """Record (or update) the plan's watches; with nothing to wait on, forget it."""
    awaited = sorted(set(waiting))
    if not awaited:
        forget(conn, plan, known)
        return
    ident = _ident(plan)
    if known is not None:
        known.pending.add(ident)
    statements.run(
        conn,
        "INSERT INTO persist_pending_plans (dedupe_key, content_hash, receiving_mailbox, plan, "
        "received_ms, parked) VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (dedupe_key, content_hash, receiving_mailbox) DO UPDATE "
        "SET plan = excluded.plan, received_ms = excluded.received_ms, parked = excluded.parked",
        (*ident, encoded, received_ms, parked),
    )
    statements.run(
        conn,
        "DELETE FROM persist_watches WHERE dedupe_key = %s AND content_hash = %s "
        "AND receiving_mailbox = %s AND NOT (message_id = ANY(%s))", (*ident, awaited),
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO persist_watches (message_id, dedupe_key, content_hash, "
            "receiving_mailbox) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(m, *ident) for m in awaited],
        )


def forget(conn: psycopg.Connection, plan: Plan, known: BatchRows | None = None) -> None:
    """Drop the plan's pending row (its watches go with it); no statement when the batch
    knows it has none."""
    if known is not None:
        if not known.may_be_pending(_ident(plan)):
            return
        known.pending.discard(_ident(plan))
    statements.run(
        conn,
        "DELETE FROM persist_pending_plans WHERE dedupe_key = %s AND content_hash = %s "
        "AND receiving_mailbox = %s", _ident(plan),
    )


def watchers(conn: psycopg.Connection, message_id: str) -> list[tuple[bytes, int]]:
    """(plan encoding, broker timestamp) of every plan waiting on ``message_id``, oldest first."""
    rows = statements.run(
        conn,
        "SELECT p.plan, p.received_ms FROM persist_watches w JOIN persist_pending_plans p "
        "USING (dedupe_key, content_hash, receiving_mailbox) WHERE w.message_id = %s "
        "ORDER BY p.since, p.dedupe_key, p.receiving_mailbox", (message_id,),
    ).fetchall()
    return [(bytes(r[0]), int(r[1])) for r in rows]


def is_parked(conn: psycopg.Connection, plan: Plan) -> bool:
    row = conn.execute(
        "SELECT parked FROM persist_pending_plans WHERE dedupe_key = %s AND content_hash = %s "
        "AND receiving_mailbox = %s", _ident(plan),
    ).fetchone()
    return bool(row and row[0])


#: How long (in broker time) a plan watches for what only a token, a conversation or a subject
#: names: a reply's original arrives within days of it — a reply to a conversation that was
#: never tracked would otherwise wait for ever. A Message-ID is waited on without a bound (the
#: parent is named exactly: when it comes, it is the parent).
SOFT_WAIT_MS = 7 * 24 * 3600 * 1000
#: How far back each batch looks for waits to expire: plans received one to four weeks before
#: it. Every plan passes through that window while persist runs (a batch a day is enough), and
#: the plans waiting on a Message-ID for good (a reply to mail never tracked) are not read by
#: every batch for ever.
EXPIRY_WINDOW_MS = 3 * SOFT_WAIT_MS
#: Only one transaction at a time expires watches; the others skip it (pg_try_advisory_xact_lock).
_EXPIRY_LOCK = 0x6D725F6578706972  # "mr_expir"


def expire(conn: psycopg.Connection, newest_ms: int) -> int:
    """Stop the waits that are past their bound: the soft watches (a key with a space, not a
    Message-ID) of plans received more than :data:`SOFT_WAIT_MS` before ``newest_ms`` (the
    batch's newest broker timestamp — not the wall clock, so a replay expires the same), and
    their watches on stored Message-IDs (a parent that was still unsettled; it only mattered
    while it waited). A plan left with nothing to wait on is forgotten: what it applied stays
    (its parent was never stored: its own thread); a parked plan is never stored. Returns how
    many plans were forgotten."""
    cutoff = newest_ms - SOFT_WAIT_MS
    row = conn.execute(
        "WITH old AS (SELECT dedupe_key, content_hash, receiving_mailbox "
        "  FROM persist_pending_plans WHERE received_ms < %s AND received_ms >= %s "
        "  AND (SELECT pg_try_advisory_xact_lock(%s))), "  # once per statement, not per row
        "dropped AS (DELETE FROM persist_watches w USING old o "
        "  WHERE (w.dedupe_key, w.content_hash, w.receiving_mailbox) "
        "      = (o.dedupe_key, o.content_hash, o.receiving_mailbox) "
        "  AND (w.message_id LIKE '%% %%' OR EXISTS (SELECT 1 FROM email_activities a "
        "       WHERE a.message_id = w.message_id AND NOT a.collision)) "
        "  RETURNING w.dedupe_key, w.content_hash, w.receiving_mailbox), "
        "gone AS (SELECT dedupe_key, content_hash, receiving_mailbox, count(*) AS n "
        "  FROM dropped GROUP BY 1, 2, 3), "
        # The statement's snapshot still shows the dropped watches: all of a plan's were
        # dropped when their count equals the count it had.
        "forgotten AS (DELETE FROM persist_pending_plans p USING gone g "
        "  WHERE (p.dedupe_key, p.content_hash, p.receiving_mailbox) "
        "      = (g.dedupe_key, g.content_hash, g.receiving_mailbox) "
        "  AND g.n = (SELECT count(*) FROM persist_watches w WHERE (w.dedupe_key, "
        "    w.content_hash, w.receiving_mailbox) "
        "    = (p.dedupe_key, p.content_hash, p.receiving_mailbox)) "
        "  RETURNING p.dedupe_key, p.content_hash), "
        # A case it made while it waited is its own for good: no longer provisional.
        "settled AS (UPDATE cases c SET provisional = false FROM forgotten f "
        "  JOIN email_activities a ON (a.dedupe_key, a.content_hash) "
        "     = (f.dedupe_key, f.content_hash) "
        "  WHERE c.originating_activity_id = a.id AND c.provisional RETURNING c.id) "
        "SELECT (SELECT count(*) FROM forgotten), (SELECT count(*) FROM settled)",
        (cutoff, cutoff - EXPIRY_WINDOW_MS, _EXPIRY_LOCK),
    ).fetchone()
    forgotten, settled = (int(row[0]), int(row[1])) if row else (0, 0)
    if forgotten:
        log.info("%d plans stopped waiting (a week past what only a token, a conversation or "
                 "a subject names); %d provisional cases are their own now", forgotten, settled)
    return forgotten
