"""Real Email records and route plans for persist's and the operations tests (route's own plan()
makes them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from mailroom.codec import Codec
from mailroom.records.action import Plan
from mailroom.records.email import Address, Delivery, Email
from persist.batch import Item, Result, apply_batch
from route.config import RouteConfig, from_document
from route.plan import plan
from route.reference import AddressMatch, Mailbox, RecordRef, ReferenceData

WHEN = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)

MAILBOXES = {
    "10": ("support@acme.example", RecordRef("queue", "support")),
    "11": ("alice@acme.example", RecordRef("user", "alice")),
    "12": ("bob@acme.example", RecordRef("user", "bob")),
    "13": ("sales@acme.example", RecordRef("queue", "sales")),
}


def email(
    *, mailbox: str = "10", sender: str = "ann@customer.example",
    to: tuple[str, ...] = ("support@acme.example",), subject: str = "Printer broken",
    body: str = "It does not print.", message_id: str = "m1@customer.example",
    in_reply_to: str | None = None, references: tuple[str, ...] = (),
    minutes: int = 0, copy_kind: str = "direct", content_hash: str | None = None,
    direction: str = "incoming", **extra: Any,
) -> Email:
    address, owner = MAILBOXES[mailbox]
    return Email(
        dedupe_key=message_id, content_hash=content_hash or "h-" + message_id,
        subject=subject, direction=direction,
        delivery=Delivery(mailbox_id=mailbox, mailbox_address=address, owner_kind=owner.kind,
                          owner_id=owner.id, folder="INBOX", copy_kind=copy_kind),
        message_id=message_id, in_reply_to=in_reply_to, references=references,
        from_address=Address("Ann Example", sender), to=tuple(Address("", a) for a in to),
        date=WHEN + timedelta(minutes=minutes), text_body=body, **extra,
    )


def reference() -> ReferenceData:
    return ReferenceData(
        addresses={
            "alice@acme.example": (AddressMatch(RecordRef("user", "alice")),),
            "bob@acme.example": (AddressMatch(RecordRef("user", "bob")),),
            "support@acme.example": (AddressMatch(RecordRef("queue", "support")),),
            "sales@acme.example": (AddressMatch(RecordRef("queue", "sales")),),
            "ann@customer.example": (AddressMatch(
                RecordRef("contact", "c-ann"), owner="alice",
                customer=RecordRef("account", "a-customer")),),
        },
        mailboxes={k: Mailbox(k, a, o) for k, (a, o) in MAILBOXES.items()},
    )


RULES: dict[str, Any] = {
    "track": {"default": "replies", "owners": {"queue:support": "all", "queue:sales": "all"}},
    "queues": {"support": {"rules": [
        {"name": "known customers", "sender": "known", "create_case": True},
        {"name": "everyone else", "create_case": False, "create_queue_item": True},
    ]}},
    "cases": {"reopen_window_days": 14, "rate_limit_cases": 0},
}


def config(**overrides: Any) -> RouteConfig:
    return from_document({**RULES, **overrides})


def make_plan(codec: Codec, e: Email, cfg: RouteConfig | None = None) -> Plan:
    return plan(e, reference(), cfg or config(), codec.encode_record(e))


def apply(db: psycopg.Connection, codec: Codec, *plans: Plan, ts: int = 1_000) -> list[Result]:
    """Apply plans as one batch and commit, as the stage does."""
    with db.transaction():
        results = apply_batch(
            db, codec, [Item(p, codec.encode_record(p), ts + i) for i, p in enumerate(plans)]
        )
    return results


def rows(db: psycopg.Connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return db.execute(sql, args).fetchall()


def snapshot(db: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """The record set, with surrogate ids replaced by natural keys (for order comparisons)."""
    q = {
        "activities": "SELECT a.dedupe_key, a.collision, a.subject, a.copy_kind, "
                      "p.dedupe_key, a.correlation_method, "
                      "CASE WHEN a.regarding LIKE 'case:%%' THEN 'case:' || c.case_key "
                      "ELSE a.regarding END "
                      "FROM email_activities a LEFT JOIN email_activities p ON p.id = a.parent_id "
                      "LEFT JOIN cases c ON a.regarding = 'case:' || c.id ORDER BY 1, 2",
        "mailboxes": "SELECT a.dedupe_key, m.mailbox_id, m.accepting_owner FROM "
                     "activity_mailboxes m JOIN email_activities a ON a.id = m.activity_id "
                     "ORDER BY 1, 2",
        "parties": "SELECT a.dedupe_key, p.role, p.address, p.record FROM activity_parties p "
                   "JOIN email_activities a ON a.id = p.activity_id ORDER BY 1, 2, 3, 4",
        "cases": "SELECT c.case_key, c.title, c.status, a.dedupe_key, c.deleted_at IS NULL "
                 "FROM cases c LEFT JOIN email_activities a ON a.id = c.originating_activity_id "
                 "ORDER BY 1",
        "queue_items": "SELECT q.queue_id, a.dedupe_key FROM queue_items q "
                       "JOIN email_activities a ON a.id = q.activity_id ORDER BY 1, 2",
        "pending": "SELECT dedupe_key, parked FROM persist_pending_plans ORDER BY 1",
    }
    return {name: rows(db, sql) for name, sql in q.items()}
