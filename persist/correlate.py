"""Resolving a plan's correlation against the stored activities (docs/plans.md).

The first candidate, in the plan's order, that resolves wins: its activity is the *parent*, its
method the correlation method, and the parent's regarding record is inherited. A candidate that
does not resolve *yet* is a key the answer is waiting on — a Message-ID, or for the other
methods a *watch key* (``token 1234``, ``thread_index <root>``, ``smart <subject hash>``) that
a stored email satisfies: when such an email lands the plan is re-evaluated, and an earlier
(preferred) candidate then wins — so the end state is the same whatever order the emails
arrived in, for every method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from mailroom.db import statements
from mailroom.records.action import Plan
from mailroom.records.candidates import (
    AnyCandidate,
    InReplyTo,
    References,
    Smart,
    ThreadIndex,
    Token,
)
from mailroom.records.steps import UpsertEmailActivity
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
    row = statements.run(
        conn,
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
    outgoing: bool = False  # an email we sent: it carries its tokens, it may be their original


@dataclass(frozen=True)
class Answer:
    """What one candidate resolved to."""

    parent: int | None = None  # the parent activity
    regarding: str = ""  # 'kind:id' inherited from it (or from the token)
    resolved: bool = False
    # The answer may still change when an email with the candidate's watch key is stored (not
    # resolved yet, or a token whose original email is not stored yet): the plan watches it.
    waits: bool = False
    # Read with the parent by the same query (the Message-ID methods), so that resolving needs
    # no further read of it: what the customer guard checks, and the parent's Message-ID when its
    # own plan still waits ('' when it does not; None: not read, :func:`resolve` reads it).
    checked: guard.Parent | None = None
    unsettled: str | None = None


def watch_key(c: AnyCandidate) -> str:
    """What the plan watches while the candidate waits: the Message-ID itself, else the method
    and its value (a normalised Message-ID has no whitespace, so the two never meet)."""
    if isinstance(c, InReplyTo | References):
        return c.value
    return f"{c.method} {c.value}"


#: The guard's columns of the parent, qualified for a query that names it ``a``.
_PARENT_COLUMNS = ", ".join(f"a.{c.strip()}" for c in guard.PARENT_COLUMNS.split(","))


@dataclass(frozen=True)
class Method:
    """How persist treats one candidate method."""

    resolve: Callable[[Lookup, Any], Answer]
    lock: Callable[[Any], str]  # the thread lock the candidate needs, or "" (persist.batch)


def _message_id(at: Lookup, c: InReplyTo | References) -> Answer:
    # The row activity_by_message_id finds, with what resolve() reads of it next (the guard's
    # columns, whether its own plan still waits): one round trip, not three — in a batch's
    # pipeline each read waits for PostgreSQL. Nothing is written between those reads, so one
    # read sees what the three did.
    row = statements.run(
        at.conn,
        f"SELECT a.id, a.regarding, {_PARENT_COLUMNS}, EXISTS (SELECT 1 FROM persist_watches w "
        "WHERE w.dedupe_key = a.dedupe_key AND w.content_hash = a.content_hash) "
        "FROM email_activities a WHERE a.message_id = %s AND NOT a.collision "
        "ORDER BY a.id LIMIT 1", (c.value,),
    ).fetchone()
    if row is None:  # not stored yet: it may still land
        return Answer(waits=True)
    parent_id, regarding, *checked, waiting = row
    return Answer(parent_id, regarding, resolved=True, checked=guard.Parent(*checked),
                  unsettled=c.value if waiting else "")


def _token(at: Lookup, c: Token) -> Answer:
    """The token's original: the earliest email we sent carrying it (``claim_tokens``), and
    only when it was sent before this one — an original is never the child of its reply."""
    if not c.value.isdigit():
        return Answer()
    row = at.conn.execute(
        "SELECT t.regarding_kind || ':' || t.regarding_id, a.id, a.regarding, "
        "       (COALESCE(a.sent_at, 'infinity'), a.dedupe_key) "
        "     < (COALESCE(%s::timestamptz, 'infinity'), %s) "
        "FROM route_tokens t LEFT JOIN email_activities a "
        "  ON a.dedupe_key = t.activity_dedupe_key AND NOT a.collision "
        "WHERE t.number = %s", (at.sent_at, at.own_key, int(c.value)),
    ).fetchone()
    if row is None:
        return Answer()  # not one of our tokens: nothing will come
    token_regarding, parent_id, parent_regarding, earlier = row
    if parent_id is not None and earlier:
        return Answer(parent_id, parent_regarding or token_regarding, resolved=True)
    # The token's record is known now; its original email may still land. An email we sent
    # is (or becomes, by claiming) the original itself: it waits for nothing — a later one
    # that claimed first is handed to the original when it lands (claim_tokens).
    return Answer(None, token_regarding, resolved=True, waits=not at.outgoing)


def _thread_index(at: Lookup, c: ThreadIndex) -> Answer:
    if at.sent_at is None:
        return Answer()
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
    if row is None:  # no earlier email of the conversation stored yet
        return Answer(waits=True)
    return Answer(row[0], row[1], resolved=True)


def _smart(at: Lookup, c: Smart) -> Answer:
    if not c.customer:
        return Answer()  # never across customers; route emits none without one
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
    if row is None:  # the original (sent inside the window) may still land
        return Answer(waits=True)
    return Answer(row[0], row[1], resolved=True)


#: Every candidate method, by its class: how it resolves and which thread lock it takes. The
#: lock is the one the email that satisfies the candidate takes too (:func:`landing_locks`),
#: so a plan that starts to watch and the email that lands never pass each other unseen.
METHODS: dict[type[AnyCandidate], Method] = {
    InReplyTo: Method(_message_id, lambda c: "m:" + c.value),
    Token: Method(_token, lambda c: "t:" + c.value),
    References: Method(_message_id, lambda c: "m:" + c.value),
    ThreadIndex: Method(_thread_index, lambda c: "r:" + c.value),
    Smart: Method(_smart, lambda c: "s:" + c.value),
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
                (guard.domain(sender.address) or "-") if external and sender else "-",
                outgoing=sender is not None and sender.internal == "outgoing")
    for rank, c in enumerate(plan.correlation):
        answer = METHODS[type(c)].resolve(at, c)
        if answer.resolved and sender is not None:
            # A stored thread of another customer: skipped (it is stored, so nothing to wait
            # for); a later candidate may still win, else the email starts its own thread.
            why = guard.check(conn, sender, answer.parent, answer.regarding, answer.checked)
            if why:
                where = (f"activity {answer.parent}" if answer.parent is not None
                         else answer.regarding)
                refused.append(f"{c.method} {c.value} → {where}: {why}")
                continue
        if answer.waits:
            waiting.add(watch_key(c))
        if answer.resolved:
            # Only the earlier, preferred candidates can still change the answer — and so can
            # the parent's own answer while it still waits: what this email inherits from it
            # (regarding, case) is settled only when the parent is.
            unsettled = answer.unsettled if answer.unsettled is not None \
                else _unsettled_message_id(conn, answer.parent)
            if unsettled:
                waiting.add(unsettled)
            return Correlation(answer.parent, c.method, rank, answer.regarding,
                               frozenset(waiting), tuple(refused))
    return Correlation(waiting=frozenset(waiting), refused=tuple(refused))


def landing_keys(plan: Plan, upsert: UpsertEmailActivity) -> list[str]:
    """The watch keys storing this email satisfies: its Message-ID, its Thread-Index
    conversation, its subject hash (token keys land when the email claims them)."""
    keys = [plan.message_id] if plan.message_id else []
    if upsert.thread_root:
        keys.append(watch_key(ThreadIndex(upsert.thread_root)))
    if upsert.subject_hash:
        keys.append(watch_key(Smart(value=upsert.subject_hash)))
    return keys


def landing_locks(plan: Plan) -> set[str]:
    """The thread locks of what storing the plan's email may satisfy (besides its Message-ID):
    the same locks the waiting candidates take."""
    locks: set[str] = set()
    for upsert in plan.steps_of(UpsertEmailActivity):
        if upsert.thread_root:
            locks.add(METHODS[ThreadIndex].lock(ThreadIndex(upsert.thread_root)))
        if upsert.subject_hash:
            locks.add(METHODS[Smart].lock(Smart(value=upsert.subject_hash)))
    return locks


def claim_tokens(conn: psycopg.Connection, plan: Plan, sent_at: datetime | None) -> list[str]:
    """An email we sent carrying a token becomes the token's original when it was sent before
    the one that claimed it so far (or none did): the earliest wins, whatever the arrival
    order. Returns the watch keys of the tokens it claimed (their waiting replies look again).

    The one it displaces was a later mail of the same token, taken for the original because it
    arrived first: where it resolved to the token alone (no parent), it now has the original as
    its parent — as if it had arrived second."""
    numbers = [int(c.value) for c in plan.correlation
               if isinstance(c, Token) and c.value.isdigit()]
    if not numbers:
        return []
    claimed = conn.execute(
        "WITH old AS (SELECT number, activity_dedupe_key AS previous FROM route_tokens "
        "  WHERE number = ANY(%(numbers)s) FOR UPDATE) "
        "UPDATE route_tokens t SET activity_dedupe_key = %(key)s FROM old "
        "WHERE t.number = old.number AND old.previous IS DISTINCT FROM %(key)s "
        "AND NOT EXISTS (SELECT 1 FROM email_activities a WHERE a.dedupe_key = old.previous "
        "  AND NOT a.collision AND (COALESCE(a.sent_at, 'infinity'), a.dedupe_key) "
        "  < (COALESCE(%(sent)s::timestamptz, 'infinity'), %(key)s)) "
        "RETURNING t.number, old.previous",
        {"numbers": numbers, "key": plan.dedupe_key, "sent": sent_at},
    ).fetchall()
    for _, previous in claimed:
        if previous is not None:
            conn.execute(
                "UPDATE email_activities SET parent_id = (SELECT id FROM email_activities "
                "  WHERE dedupe_key = %s AND NOT collision) "
                "WHERE dedupe_key = %s AND NOT collision AND correlation_method = 'token' "
                "AND parent_id IS NULL", (plan.dedupe_key, previous),
            )
    return [watch_key(Token(str(number))) for number, _ in claimed]


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
