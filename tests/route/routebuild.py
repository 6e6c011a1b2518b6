"""Real Email records and reference data for route's unit tests."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from mailroom.records.email import Address, Delivery, Email, Markers, Report
from route.config import RouteConfig, from_document
from route.reference import AddressMatch, Mailbox, RecordRef, ReferenceData

WHEN = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
HUMAN = Markers()
NOT_A_REPORT = Report()


def addr(text: str, name: str = "") -> Address:
    return Address(name, text)


def email(
    *,
    mailbox: str = "10",
    owner: str = "queue:support",
    sender: str = "ann@customer.example",
    to: tuple[str, ...] = ("support@acme.example",),
    cc: tuple[str, ...] = (),
    subject: str = "Printer broken",
    body: str = "It does not print.",
    message_id: str = "m1@customer.example",
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
    thread_index: str | None = None,
    direction: str = "incoming",
    markers: Markers = HUMAN,
    report: Report = NOT_A_REPORT,
    forwarded_by: str | None = None,
    date: datetime = WHEN,
    **extra: Any,
) -> Email:
    kind, _, ident = owner.partition(":")
    return Email(
        dedupe_key=message_id,
        content_hash="h-" + message_id,
        subject=subject,
        direction=direction,
        delivery=Delivery(
            mailbox_id=mailbox, mailbox_address=f"box{mailbox}@acme.example",
            owner_kind=kind, owner_id=ident or None, folder="INBOX",
            copy_kind="forwarded_rfc822" if forwarded_by else "direct",
            forwarded_by_user=forwarded_by,
        ),
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        thread_index=thread_index,
        from_address=addr(sender, "Ann Example") if sender else None,
        to=tuple(addr(a) for a in to),
        cc=tuple(addr(a) for a in cc),
        date=date,
        markers=markers,
        report=report,
        text_body=body,
        **extra,
    )


def thread_index(replies: int = 1) -> str:
    return base64.b64encode(bytes(range(22)) + b"\x01\x02\x03\x04\x05" * replies).decode()


def reference(**more: tuple[AddressMatch, ...]) -> ReferenceData:
    addresses: dict[str, tuple[AddressMatch, ...]] = {
        "alice@acme.example": (AddressMatch(RecordRef("user", "alice")),),
        "bob@acme.example": (AddressMatch(RecordRef("user", "bob")),),
        "support@acme.example": (AddressMatch(RecordRef("queue", "support")),),
        "sales@acme.example": (AddressMatch(RecordRef("queue", "sales")),),
        "ann@customer.example": (
            AddressMatch(RecordRef("contact", "c-ann"), owner="alice",
                         customer=RecordRef("account", "a-customer")),
        ),
    }
    addresses.update(more)
    return ReferenceData(
        addresses=addresses,
        mailboxes={
            "10": Mailbox("10", "support@acme.example", RecordRef("queue", "support")),
            "11": Mailbox("11", "alice@acme.example", RecordRef("user", "alice")),
            "12": Mailbox("12", "bob@acme.example", RecordRef("user", "bob")),
            "13": Mailbox("13", "sales@acme.example", RecordRef("queue", "sales")),
        },
    )


RULES = {
    "track": {"default": "replies", "owners": {"queue:support": "all", "queue:sales": "all"}},
    "queues": {
        "support": {"rules": [
            {"name": "urgent", "subject": r"\burgent\b", "create_case": True},
            {"name": "known customers", "sender": "known", "create_case": True},
            {"name": "everyone else", "create_case": False, "create_queue_item": True},
        ]},
    },
    "cases": {"reopen_window_days": 14, "rate_limit_cases": 3, "rate_limit_window_hours": 1},
}


def config(**overrides: Any) -> RouteConfig:
    doc: dict[str, Any] = {k: v for k, v in RULES.items()}
    doc.update(overrides)
    return from_document(doc)
