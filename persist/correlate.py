"""Resolving a plan's correlation against the stored activities (docs/plans.md).

The first candidate, in the plan's order, that resolves wins: its activity is the *parent*, its
method the correlation method, and the parent's regarding record is inherited. A Message-ID
candidate (``in_reply_to``, ``references``) that does not resolve *yet* is a Message-ID the
answer is waiting on: when that email lands the plan is re-evaluated, and an earlier (preferred)
candidate then wins — so the end state is the same whatever order the emails arrived in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from mailroom.records.action import Candidate, Plan

#: Methods that name a Message-ID: an unresolved one may still land, so the answer waits on it.
WAITABLE = frozenset({"in_reply_to", "references"})


@dataclass(frozen=True)
class Correlation:
    parent_id: int | None = None
    method: str = ""
    rank: int | None = None  # the winning candidate's position in plan.correlation
    regarding: str = ""  # 'kind:id' inherited from the parent (or the token), or ''
    waiting: frozenset[str] = field(default_factory=frozenset)  # Message-IDs that may land

    @property
    def found(self) -> bool:
        return self.rank is not None

    def describe(self) -> str:
        if not self.found:
            return "no candidate resolved" + (
                f" (waiting on {', '.join(sorted(self.waiting))})" if self.waiting else ""
            )
        return f"{self.method} → activity {self.parent_id} regarding {self.regarding or '-'}"


def activity_by_message_id(
    conn: psycopg.Connection, message_id: str
) -> tuple[int, str] | None:
    """(id, regarding) of the real (non-collision) activity with that Message-ID."""
    row = conn.execute(
        "SELECT id, regarding FROM email_activities WHERE message_id = %s AND NOT collision "
        "ORDER BY id LIMIT 1", (message_id,),
    ).fetchone()
    return (row[0], row[1]) if row else None


def _token(
    conn: psycopg.Connection, value: str, own_key: str
) -> tuple[int | None, str] | None:
    if not value.isdigit():
        return None
    row = conn.execute(
        "SELECT t.regarding_kind || ':' || t.regarding_id, a.id, a.regarding "
        "FROM route_tokens t LEFT JOIN email_activities a "
        "  ON a.dedupe_key = t.activity_dedupe_key AND NOT a.collision AND a.dedupe_key <> %s "
        "WHERE t.number = %s", (own_key, int(value)),
    ).fetchone()
    if row is None:
        return None
    token_regarding, parent_id, parent_regarding = row
    return parent_id, (parent_regarding or token_regarding)


def _thread_index(
    conn: psycopg.Connection, value: str, sent_at: str | None, own_key: str
) -> tuple[int, str] | None:
    if not sent_at:
        return None
    row = conn.execute(
        "SELECT id, regarding FROM email_activities WHERE thread_root = %s AND NOT collision "
        "AND sent_at < %s AND dedupe_key <> %s ORDER BY sent_at DESC, id DESC LIMIT 1",
        (value, sent_at, own_key),
    ).fetchone()
    return (row[0], row[1]) if row else None


def _smart(conn: psycopg.Connection, c: Candidate, own_key: str) -> tuple[int, str] | None:
    p = c.params
    if not p.get("customer"):
        return None  # never across customers; route emits none without one
    people = [a for a in p.get("participants", "").split(",") if a]
    row = conn.execute(
        "SELECT id, regarding FROM email_activities WHERE subject_hash = %s AND customer = %s "
        "AND sent_at >= %s AND sent_at < %s AND NOT collision AND dedupe_key <> %s "
        "AND cardinality(ARRAY(SELECT unnest(participants) INTERSECT "
        "                      SELECT unnest(%s::text[]))) >= %s "
        "ORDER BY sent_at DESC, id DESC LIMIT 1",
        (c.value, p["customer"], p.get("since") or None, p.get("before") or None, own_key,
         people, int(p.get("min_shared", "1") or 1)),
    ).fetchone()
    return (row[0], row[1]) if row else None


def resolve(conn: psycopg.Connection, plan: Plan, sent_at: str | None) -> Correlation:
    waiting: set[str] = set()
    for rank, c in enumerate(plan.correlation):
        hit: tuple[int | None, str] | None
        if c.method in WAITABLE:
            hit = activity_by_message_id(conn, c.value)
            if hit is None:
                waiting.add(c.value)
        elif c.method == "token":
            hit = _token(conn, c.value, plan.dedupe_key)
        elif c.method == "thread_index":
            hit = _thread_index(conn, c.value, sent_at, plan.dedupe_key)
        else:
            hit = _smart(conn, c, plan.dedupe_key)
        if hit is not None:
            # Only the earlier, preferred candidates can still change the answer — and so can
            # the parent's own answer while it still waits: what this email inherits from it
            # (regarding, case) is settled only when the parent is.
            unsettled = _unsettled_message_id(conn, hit[0])
            if unsettled:
                waiting.add(unsettled)
            return Correlation(hit[0], c.method, rank, hit[1], frozenset(waiting))
    return Correlation(waiting=frozenset(waiting))


def _unsettled_message_id(conn: psycopg.Connection, activity_id: int | None) -> str:
    """The activity's Message-ID when its own plan still waits on another email, else ''."""
    if activity_id is None:
        return ""
    row = conn.execute(
        "SELECT a.message_id FROM email_activities a WHERE a.id = %s AND a.message_id IS NOT "
        "NULL AND EXISTS (SELECT 1 FROM persist_watches w WHERE w.dedupe_key = a.dedupe_key "
        "AND w.content_hash = a.content_hash)", (activity_id,),
    ).fetchone()
    return str(row[0]) if row else ""
