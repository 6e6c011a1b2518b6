"""The ``case_rules`` condition and the ``create_or_update_case`` step (docs/plans.md).

Decided in the email's own time (``t`` = its sent_at), never the wall clock, so a replay decides
the same way. Title and customer are written once, when the case is created (first write wins:
a user's edit is never overwritten); a case a user deleted is a tombstone (``deleted_at``) that
the natural key still finds, so a replay never creates it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from mailroom.db import statements
from mailroom.records.steps import CaseRules, CreateOrUpdateCase
from persist.correlate import Correlation


@dataclass(frozen=True)
class CaseOutcome:
    applied: bool
    what: str  # updated | reopened | created | exists | deleted | rate_limited | ...
    case_id: int | None = None
    reason: str = ""


def _thread_case(
    conn: psycopg.Connection, corr: Correlation, t: datetime | None, reopen_s: int
) -> CaseOutcome | None:
    kind, _, ident = corr.regarding.partition(":")
    if kind != "case" or not ident.isdigit():
        return None
    row = statements.run(
        conn,
        "SELECT id, status, resolved_at, deleted_at FROM cases WHERE id = %s FOR UPDATE",
        (int(ident),),
    ).fetchone()
    if row is None or row[3] is not None:
        return None  # gone or deleted by a user: the thread opens a new case
    case_id, status, resolved_at = row[0], row[1], row[2]
    if status == "active":
        return CaseOutcome(True, "updated", case_id)
    if (status == "resolved" and resolved_at is not None and t is not None
            and t - resolved_at <= timedelta(seconds=reopen_s)):
        conn.execute(
            "UPDATE cases SET status = 'active', resolved_at = NULL, "
            "reopened_count = reopened_count + 1 WHERE id = %s", (case_id,),
        )
        return CaseOutcome(True, "reopened", case_id)
    return None


def _rate_limited(
    conn: psycopg.Connection, rules: CaseRules, t: datetime | None, own_key: str
) -> str:
    limit = rules.rate_limit_cases
    if limit <= 0 or t is None:
        return ""
    window = rules.rate_limit_window_seconds
    row = statements.run(
        conn,
        "SELECT count(*) FROM email_activities WHERE sender = %s AND case_rule <> '' "
        "AND sent_at >= %s AND sent_at < %s AND dedupe_key <> %s AND NOT collision",
        (rules.sender, t - timedelta(seconds=window), t, own_key),
    ).fetchone()
    count = int(row[0]) if row else 0
    if count >= limit:
        return (f"rate limited: {count} cases from {rules.sender} within {window} s "
                f"(limit {limit})")
    return ""


def apply(
    conn: psycopg.Connection, step: CreateOrUpdateCase, corr: Correlation, activity_id: int,
    dedupe_key: str, provisional: bool,
) -> CaseOutcome:
    """Evaluate ``case_rules`` and apply the outcome; returns what happened and why."""
    rules = step.condition
    t = rules.sent_at
    own = statements.run(
        conn,
        "SELECT id, deleted_at, provisional, user_edited_at FROM cases WHERE case_key = %s "
        "FOR UPDATE", (step.key,),
    ).fetchone()
    found = _thread_case(conn, corr, t, rules.reopen_window_seconds)
    if found is not None and (own is None or found.case_id != own[0]):
        if own is not None and own[2] and own[1] is None and own[3] is None:
            # A provisional case of this email, made before its parent landed: the thread
            # has its case after all, so withdraw ours (no user has touched it).
            conn.execute("DELETE FROM cases WHERE id = %s", (own[0],))
        elif own is not None:
            return _own(conn, own, activity_id, provisional)
        _regard(conn, activity_id, found.case_id)
        return found
    if own is not None:
        return _own(conn, own, activity_id, provisional)
    limited = _rate_limited(conn, rules, t, dedupe_key)
    if limited:
        return CaseOutcome(False, "rate_limited", reason=limited)
    row = statements.run(
        conn,
        "INSERT INTO cases (case_key, title, customer, queue_id, rule_item, "
        "originating_activity_id, provisional) VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (case_key) DO NOTHING RETURNING id",
        (step.key, step.title or "(no subject)", step.customer, step.queue, step.rule_item,
         activity_id, provisional),
    ).fetchone()
    if row is None:  # inserted meanwhile by another transaction: use it as it is
        again = conn.execute(
            "SELECT id, deleted_at, provisional, user_edited_at FROM cases WHERE case_key = %s",
            (step.key,),
        ).fetchone()
        assert again is not None
        return _own(conn, again, activity_id, provisional)
    _regard(conn, activity_id, row[0])
    return CaseOutcome(True, "created", row[0])


def _own(
    conn: psycopg.Connection, own: tuple, activity_id: int, provisional: bool
) -> CaseOutcome:
    if own[1] is not None:
        return CaseOutcome(False, "deleted", own[0], "the case was deleted by a user")
    if own[2] and not provisional:  # nothing earlier in the thread is awaited any more
        conn.execute("UPDATE cases SET provisional = false WHERE id = %s", (own[0],))
    _regard(conn, activity_id, own[0])
    return CaseOutcome(True, "exists", own[0])


def _regard(conn: psycopg.Connection, activity_id: int, case_id: int | None) -> None:
    statements.run(
        conn,
        "UPDATE email_activities SET regarding = %s WHERE id = %s AND regarding <> %s",
        (f"case:{case_id}", activity_id, f"case:{case_id}"),
    )
