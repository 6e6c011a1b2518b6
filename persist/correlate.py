"""Resolving a plan's correlation against the stored activities (docs/plans.md).

The first candidate, in the plan's order, that resolves wins: its activity is the *parent*, its
method the correlation method, and the parent's regarding record is inherited. A Message-ID
candidate (``in_reply_to``, ``references``) that does not resolve *yet* is a Message-ID the
answer is waiting on: when that email lands the plan is re-evaluated, and an earlier (preferred)
candidate then wins — so the end state is the same whatever order the emails arrived in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from mailroom.records.action import Plan
from mailroom.records.candidates import (
    AnyCandidate,
    InReplyTo,
    References,
    Smart,
    ThreadIndex,
    Token,
)
from persist import guard


@dataclass(frozen=True)
class Correlation:
    parent_id: int | None = None
    method: str = ""
    rank: int | None = None  # the winning candidate's position in plan.correlation
    regarding: str = ""  # 'kind:id' inherited from the parent (or the token), or ''
    waiting: frozenset[str] = field(default_factory=frozenset)  # Message-IDs that may land
    # Candidates the customer guard refused (persist.guard): 'method value → activity: why'
    refused: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.rank is not None

    def describe(self) -> str:
        refused = f"; refused by the customer guard: {'; '.join(self.refused)}" \
            if self.refused else ""
        if not self.found:
            return "no candidate resolved" + (
                f" (waiting on {', '.join(sorted(self.waiting))})" if self.waiting else ""
            ) + refused
        return (f"{self.method} → activity {self.parent_id} regarding {self.regarding or '-'}"
                + refused)


def activity_by_message_id(
    conn: psycopg.Connection, message_id: str
) -> tuple[int, str] | None:
    """(id, regarding) of the real (non-collision) activity with that Message-ID."""
    row = conn.execute(
        "SELECT id, regarding FROM email_activities WHERE message_id = %s AND NOT collision "
        "ORDER BY id LIMIT 1", (message_id,),
    ).fetchone()
    return (row[0], row[1]) if row else None


@dataclass(frozen=True)
class Lookup:
    """What a resolver may read besides its candidate."""

    conn: psycopg.Connection
    own_key: str  # the plan's dedupe key: an email never correlates with itself
    sent_at: datetime | None  # the email's own time (the activity step's sent_at)
    # The external sender's customer and domain: where one method finds several stored
    # activities, the ones the customer guard accepts come first ('-' when internal or none).
    customer: str = "-"
    domain: str = "-"


#: (parent activity id or None, regarding 'kind:id') of a resolved candidate; None: unresolved.
Hit = tuple[int | None, str] | None


@dataclass(frozen=True)
class Method:
    """How persist treats one candidate method."""

    resolve: Callable[[Lookup, Any], Hit]
    lock: Callable[[Any], str]  # the thread lock the candidate needs, or "" (persist.batch)
    waits: bool = False  # names a Message-ID: unresolved, it may still land (the answer waits)


def _message_id(at: Lookup, c: InReplyTo | References) -> Hit:
    return activity_by_message_id(at.conn, c.value)


def _token(at: Lookup, c: Token) -> Hit:
    if not c.value.isdigit():
        return None
    row = at.conn.execute(
        "SELECT t.regarding_kind || ':' || t.regarding_id, a.id, a.regarding "
        "FROM route_tokens t LEFT JOIN email_activities a "
        "  ON a.dedupe_key = t.activity_dedupe_key AND NOT a.collision AND a.dedupe_key <> %s "
        "WHERE t.number = %s", (at.own_key, int(c.value)),
    ).fetchone()
    if row is None:
        return None
    token_regarding, parent_id, parent_regarding = row
    return parent_id, (parent_regarding or token_regarding)


def _thread_index(at: Lookup, c: ThreadIndex) -> Hit:
    if at.sent_at is None:
        return None
    # The latest earlier email of the conversation — of the sender's own customer first: a
    # copied Thread-Index (another customer's mail, refused and kept apart) is in the same
    # conversation, and must not stand between the customer's reply and its thread.
    row = at.conn.execute(
        "SELECT id, regarding FROM email_activities WHERE thread_root = %s AND NOT collision "
        "AND sent_at < %s AND dedupe_key <> %s "
        "ORDER BY (customer = %s OR split_part(sender, '@', 2) = %s) DESC, sent_at DESC, id DESC "
        "LIMIT 1",
        (c.value, at.sent_at, at.own_key, at.customer, at.domain),
    ).fetchone()
    return (row[0], row[1]) if row else None


def _smart(at: Lookup, c: Smart) -> Hit:
    if not c.customer:
        return None  # never across customers; route emits none without one
    # The customer's own thread first; another customer's match is returned only when there is
    # none, so the customer guard refuses it and the near miss is flagged for review.
    row = at.conn.execute(
        "SELECT id, regarding FROM email_activities WHERE subject_hash = %s "
        "AND sent_at >= %s AND sent_at < %s AND NOT collision AND dedupe_key <> %s "
        "AND cardinality(ARRAY(SELECT unnest(participants) INTERSECT "
        "                      SELECT unnest(%s::text[]))) >= %s "
        "ORDER BY customer = %s DESC, sent_at DESC, id DESC LIMIT 1",
        (c.value, c.since, c.before, at.own_key, list(c.participants), c.min_shared or 1,
         c.customer),
    ).fetchone()
    return (row[0], row[1]) if row else None


#: Every candidate method, by its class: how it resolves and which thread lock it takes.
METHODS: dict[type[AnyCandidate], Method] = {
    InReplyTo: Method(_message_id, lambda c: "m:" + c.value, waits=True),
    Token: Method(_token, lambda c: "t:" + c.value),
    References: Method(_message_id, lambda c: "m:" + c.value, waits=True),
    ThreadIndex: Method(_thread_index, lambda c: "r:" + c.value),
    Smart: Method(_smart, lambda c: ""),  # reads a window of activities: no one thread
}


def resolve(
    conn: psycopg.Connection, plan: Plan, sent_at: datetime | None,
    sender: guard.Sender | None = None,
) -> Correlation:
    """``sender``: the new email's side of the customer guard (None: no guard)."""
    waiting: set[str] = set()
    refused: list[str] = []
    external = sender is not None and not sender.internal
    at = Lookup(conn, plan.dedupe_key, sent_at,
                (sender.customer or "-") if external and sender else "-",
                (guard.domain(sender.address) or "-") if external and sender else "-")
    for rank, c in enumerate(plan.correlation):
        method = METHODS[type(c)]
        hit = method.resolve(at, c)
        if hit is None and method.waits:
            waiting.add(c.value)
        if hit is not None and sender is not None:
            # A stored thread of another customer: skipped (it is stored, so nothing to wait
            # for); a later candidate may still win, else the email starts its own thread.
            why = guard.check(conn, sender, hit[0], hit[1])
            if why:
                where = f"activity {hit[0]}" if hit[0] is not None else hit[1]
                refused.append(f"{c.method} {c.value} → {where}: {why}")
                continue
        if hit is not None:
            # Only the earlier, preferred candidates can still change the answer — and so can
            # the parent's own answer while it still waits: what this email inherits from it
            # (regarding, case) is settled only when the parent is.
            unsettled = _unsettled_message_id(conn, hit[0])
            if unsettled:
                waiting.add(unsettled)
            return Correlation(hit[0], c.method, rank, hit[1], frozenset(waiting),
                               tuple(refused))
    return Correlation(waiting=frozenset(waiting), refused=tuple(refused))


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
