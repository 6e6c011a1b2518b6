"""The current state of CRM records, read for the change feed: one query per record type (and
per child table of an email activity) for a whole batch of ids, never one per record.

A record that no longer exists is absent from the answer: the relay publishes a tombstone.
Times come back as PostgreSQL keeps them (microseconds); the records cut them to Avro's
milliseconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from mailroom.records.change import (
    FeedActivity,
    FeedAttachment,
    FeedCase,
    FeedContact,
    FeedDeliveryFailure,
    FeedMailbox,
    FeedParty,
    FeedQueueItem,
)

FeedState = FeedActivity | FeedCase | FeedQueueItem | FeedContact


def _rows(conn: psycopg.Connection, sql: str, ids: list[Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, (ids,)).fetchall()


def _by(rows: Iterable[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[row.pop(key)].append(row)
    return out


_ACTIVITY_FIELDS = (
    "id, dedupe_key, content_hash, collision, message_id, direction, subject, text_body, "
    "html_body, sent_at, received_at, copy_kind, delivery_path, customer, parent_id, "
    "correlation_method, regarding, correlation_refused, created_at, updated_at, "
    "user_edited_at, deleted_at"
)

def activities(conn: psycopg.Connection, ids: list[str]) -> dict[str, FeedActivity]:
    numbers = [int(i) for i in ids]
    found = _rows(conn, f"SELECT {_ACTIVITY_FIELDS} FROM email_activities WHERE id = ANY(%s)",
                  numbers)
    if not found:
        return {}
    mailboxes = _by(_rows(conn, "SELECT activity_id, mailbox_id, accepting_owner, copy_kind, "
                          "delivery_path, forwarded_by FROM activity_mailboxes "
                          "WHERE activity_id = ANY(%s) ORDER BY activity_id, mailbox_id",
                          numbers), "activity_id")
    parties = _by(_rows(conn, "SELECT activity_id, role, address, record, name, outcome "
                        "FROM activity_parties WHERE activity_id = ANY(%s) "
                        "ORDER BY activity_id, role, address, record", numbers), "activity_id")
    attachments = _by(_rows(conn, "SELECT activity_id, position, name, content_type, size, "
                            "sha256, inline, omitted FROM activity_attachments "
                            "WHERE activity_id = ANY(%s) ORDER BY activity_id, position",
                            numbers), "activity_id")
    failures = _by(_rows(conn, "SELECT activity_id, recipient, bounce_activity_id, detail "
                         "FROM activity_delivery_failures WHERE activity_id = ANY(%s) "
                         "ORDER BY activity_id, recipient", numbers), "activity_id")
    out: dict[str, FeedActivity] = {}
    for row in found:
        aid = row["id"]
        out[str(aid)] = FeedActivity(
            **row, text_body_ref=None, html_body_ref=None,
            mailboxes=tuple(FeedMailbox(**m) for m in mailboxes.get(aid, ())),
            parties=tuple(FeedParty(**p) for p in parties.get(aid, ())),
            attachments=tuple(FeedAttachment(**a) for a in attachments.get(aid, ())),
            delivery_failures=tuple(FeedDeliveryFailure(**f) for f in failures.get(aid, ())),
        )
    return out


def cases(conn: psycopg.Connection, ids: list[str]) -> dict[str, FeedCase]:
    rows = _rows(conn, "SELECT id, number, title, customer, queue_id, rule_item, status, "
                 "resolved_at, originating_activity_id, provisional, reopened_count, "
                 "created_at, updated_at, user_edited_at, deleted_at FROM cases "
                 "WHERE id = ANY(%s)", [int(i) for i in ids])
    return {str(r["id"]): FeedCase(**r) for r in rows}


def queue_items(conn: psycopg.Connection, ids: list[str]) -> dict[str, FeedQueueItem]:
    keys = [i.rpartition(":") for i in ids]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT q.queue_id, q.activity_id, q.rule_item, q.created_at, q.deleted_at "
            "FROM queue_items q JOIN unnest(%s::text[], %s::bigint[]) AS k (queue_id, aid) "
            "ON q.queue_id = k.queue_id AND q.activity_id = k.aid",
            ([k[0] for k in keys], [int(k[2]) for k in keys]),
        ).fetchall()
    return {f"{r['queue_id']}:{r['activity_id']}": FeedQueueItem(**r) for r in rows}


def contacts(conn: psycopg.Connection, ids: list[str]) -> dict[str, FeedContact]:
    rows = _rows(conn, "SELECT c.id, c.first_name, c.last_name, c.account_id, c.owner_id, "
                 "c.created_at, c.updated_at, coalesce(array_agg(a.address ORDER BY "
                 "a.is_primary DESC, a.address) FILTER (WHERE a.address IS NOT NULL), "
                 "'{}') AS addresses FROM contacts c LEFT JOIN email_addresses a "
                 "ON a.record_kind = 'contact' AND a.record_id = c.id "
                 "WHERE c.id = ANY(%s) GROUP BY c.id", ids)
    return {r["id"]: FeedContact(**r)
            for r in rows}


#: How each record type's current state is read, by the type's name on the feed.
READERS: dict[str, Callable[[psycopg.Connection, list[str]], dict[str, Any]]] = {
    "email_activity": activities,
    "case": cases,
    "queue_item": queue_items,
    "contact": contacts,
}


def read(conn: psycopg.Connection,
         keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], FeedState]:
    """The state of every (record type, id) that exists; a missing one was deleted."""
    wanted: dict[str, list[str]] = defaultdict(list)
    for record_type, record_id in keys:
        wanted[record_type].append(record_id)
    out: dict[tuple[str, str], FeedState] = {}
    for record_type, ids in wanted.items():
        for record_id, state in READERS[record_type](conn, ids).items():
            out[record_type, record_id] = state
    return out
