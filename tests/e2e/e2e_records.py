"""The whole record set mail produced, as plain tuples with natural fields only.

Surrogate ids and case numbers depend on which partition ran first, so every reference is
written by what a user sees: an activity by its subject, a case by its originating email's
subject, a mailbox by its address.
"""

from __future__ import annotations

import psycopg

_ACTIVITY_NAMES = """
SELECT a.id, a.subject || CASE WHEN a.collision THEN ' (collision)' ELSE '' END
  FROM email_activities a
"""


def snapshot(conn: psycopg.Connection) -> dict[str, set[tuple[object, ...]]]:
    names = {i: s for i, s in conn.execute(_ACTIVITY_NAMES).fetchall()}
    case_origin = {
        f"case:{cid}": f"case:{names.get(origin, '?')}"
        for cid, origin in conn.execute("SELECT id, originating_activity_id FROM cases")
    }

    def rows(query: str) -> list[tuple[object, ...]]:
        return [tuple(r) for r in conn.execute(query).fetchall()]

    activities = {
        (names[i], kind, direction, method, names.get(parent, ""),
         case_origin.get(regarding, regarding), bool(automated), customer)
        for i, kind, direction, method, parent, regarding, automated, customer in rows(
            "SELECT id, copy_kind, direction, correlation_method, parent_id, regarding, "
            "automated, customer FROM email_activities WHERE deleted_at IS NULL")
    }
    mailboxes = {
        (names[a], address, owner, kind, by)
        for a, address, owner, kind, by in rows(
            "SELECT m.activity_id, b.address, m.accepting_owner, m.copy_kind, m.forwarded_by "
            "FROM activity_mailboxes m JOIN ingest_mailboxes b ON b.id::text = m.mailbox_id")
    }
    parties = {
        (names[a], role, address, record, outcome)
        for a, role, address, record, outcome in rows(
            "SELECT activity_id, role, address, record, outcome FROM activity_parties")
    }
    cases = {
        (title, customer, queue, status, names.get(origin, ""), deleted)
        for title, customer, queue, status, origin, deleted in rows(
            "SELECT title, customer, queue_id, status, originating_activity_id, "
            "deleted_at IS NOT NULL FROM cases")
    }
    queue_items = {
        (queue, names[a], rule)
        for queue, a, rule in rows("SELECT queue_id, activity_id, rule_item FROM queue_items")
    }
    collisions = {
        (key, names[a], names.get(real, ""))
        for key, a, real in rows(
            "SELECT dedupe_key, activity_id, real_activity_id FROM email_collisions")
    }
    failures = {
        (names[a], rcpt, names.get(b, ""))
        for a, rcpt, b in rows(
            "SELECT activity_id, recipient, bounce_activity_id FROM activity_delivery_failures")
    }
    contacts = set(rows("SELECT address, contact_id FROM persist_created_contacts"))
    return {"activities": activities, "mailboxes": mailboxes, "parties": parties,
            "cases": cases, "queue_items": queue_items, "collisions": collisions,
            "delivery_failures": failures, "created_contacts": contacts}
