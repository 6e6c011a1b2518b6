"""The current state of CRM records, read for the change feed: one query per record type (and
per child table of an email activity) for a whole batch of ids, never one per record.

A record that no longer exists is absent from the answer: the relay publishes a tombstone.
Times come back as PostgreSQL keeps them (microseconds); the records cut them to Avro's
milliseconds.
"""

from __future__ import annotations

import dataclasses
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


def _columns(record: type, prefix: str = "", leave_out: frozenset[str] = frozenset()) -> str:
    """The SELECT list of a feed record: its fields are the table's column names, so the two
    cannot drift apart."""
    return ", ".join(prefix + f.name for f in dataclasses.fields(record)
                     if f.name not in leave_out)


#: An email activity's own columns: not the claim-check refs (set by the relay) nor the
#: child records (read from their own tables below).
_ACTIVITY_COLUMNS = _columns(FeedActivity, leave_out=frozenset({
    "text_body_ref", "html_body_ref", "mailboxes", "parties", "attachments",
    "delivery_failures"}))

#: An email activity's child tables: (table, record, ORDER BY after activity_id).
_CHILDREN: tuple[tuple[str, type, str], ...] = (
    ("activity_mailboxes", FeedMailbox, "mailbox_id"),
    ("activity_parties", FeedParty, "role, address, record"),
    ("activity_attachments", FeedAttachment, "position"),
    ("activity_delivery_failures", FeedDeliveryFailure, "recipient"),
)


def _children(conn: psycopg.Connection, table: str, record: type, order: str,
              numbers: list[int]) -> dict[int, tuple[Any, ...]]:
    """One child table's rows of every activity in ``numbers``, as records, by activity."""
    rows = _rows(conn, f"SELECT activity_id, {_columns(record)} FROM {table} "
                 f"WHERE activity_id = ANY(%s) ORDER BY activity_id, {order}", numbers)
    return {aid: tuple(record(**r) for r in found)
            for aid, found in _by(rows, "activity_id").items()}


def activities(conn: psycopg.Connection, ids: list[str]) -> dict[str, FeedActivity]:
    numbers = [int(i) for i in ids]
    found = _rows(conn, f"SELECT {_ACTIVITY_COLUMNS} FROM email_activities WHERE id = ANY(%s)",
                  numbers)
    if not found:
        return {}
    mailboxes, parties, attachments, failures = (
        _children(conn, table, record, order, numbers) for table, record, order in _CHILDREN)
    return {str(row["id"]): FeedActivity(
        **row, text_body_ref=None, html_body_ref=None,
        mailboxes=mailboxes.get(row["id"], ()), parties=parties.get(row["id"], ()),
        attachments=attachments.get(row["id"], ()),
        delivery_failures=failures.get(row["id"], ())) for row in found}


def cases(conn: psycopg.Connection, ids: list[str]) -> dict[str, FeedCase]:
    rows = _rows(conn, f"SELECT {_columns(FeedCase)} FROM cases WHERE id = ANY(%s)",
                 [int(i) for i in ids])
    return {str(r["id"]): FeedCase(**r) for r in rows}


def queue_items(conn: psycopg.Connection, ids: list[str]) -> dict[str, FeedQueueItem]:
    keys = [i.rpartition(":") for i in ids]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_columns(FeedQueueItem, prefix='q.')} "
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
    return {r["id"]: FeedContact(**r) for r in rows}


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
