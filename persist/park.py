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

from collections.abc import Iterable

import psycopg

from mailroom.records.action import Plan
from persist.batchrows import BatchRows


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
    conn.execute(
        "INSERT INTO persist_pending_plans (dedupe_key, content_hash, receiving_mailbox, plan, "
        "received_ms, parked) VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (dedupe_key, content_hash, receiving_mailbox) DO UPDATE "
        "SET plan = excluded.plan, received_ms = excluded.received_ms, parked = excluded.parked",
        (*ident, encoded, received_ms, parked),
    )
    conn.execute(
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
    conn.execute(
        "DELETE FROM persist_pending_plans WHERE dedupe_key = %s AND content_hash = %s "
        "AND receiving_mailbox = %s", _ident(plan),
    )


def watchers(conn: psycopg.Connection, message_id: str) -> list[tuple[bytes, int]]:
    """(plan encoding, broker timestamp) of every plan waiting on ``message_id``, oldest first."""
    rows = conn.execute(
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
