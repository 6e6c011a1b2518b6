"""RecordChange: the state of one CRM record as committed (compacted topic ``records``).

The change feed for the rest of the company (docs/feed.md): a search index, a data warehouse or
the company's own CRM follows the records persist writes without polling PostgreSQL. The Kafka
key is ``<record_type>:<record_id>``, so compaction keeps each record's latest state; a record
deleted from the database is a tombstone (a null value) under its key.

Exactly one of ``activity``, ``case``, ``queue_item`` and ``contact`` is set, the one
``record_type`` names. Bodies too large for the topic travel by claim check: the body is then
``None`` and its ``*_ref`` holds the sha256 of its UTF-8 bytes in the blob store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from mailroom.records.avro import AvroMapped
from mailroom.records.base import (
    check_choice,
    now_millis,
    optional_utc_millis,
    set_field,
    utc_millis,
)

RECORD_TYPES: frozenset[str] = frozenset({"email_activity", "case", "queue_item", "contact"})


def feed_key(record_type: str, record_id: str) -> str:
    return f"{record_type}:{record_id}"


def _millis(record: object, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """Times as Avro keeps them (UTC, milliseconds), so a record equals its round trip."""
    for name in required:
        set_field(record, name, utc_millis(getattr(record, name)))
    for name in optional:
        set_field(record, name, optional_utc_millis(getattr(record, name)))


def _tuples(record: object, names: tuple[str, ...]) -> None:
    """Lists (as read from the database or Avro) kept as tuples: records compare by value."""
    for name in names:
        set_field(record, name, tuple(getattr(record, name)))


@dataclass(frozen=True, slots=True)
class FeedMailbox:
    """A mailbox one copy of the email was received in."""

    mailbox_id: str
    accepting_owner: str
    copy_kind: str
    delivery_path: str
    forwarded_by: str


@dataclass(frozen=True, slots=True)
class FeedParty:
    role: str  # from, to, cc, bcc
    address: str
    record: str  # 'kind:id', '' when unresolved
    name: str
    outcome: str


@dataclass(frozen=True, slots=True)
class FeedAttachment:
    position: int
    name: str
    content_type: str
    size: int
    sha256: str | None  # the content, in the blob store or attachment_contents
    inline: bool
    omitted: str | None  # why no content is stored


@dataclass(frozen=True, slots=True)
class FeedDeliveryFailure:
    recipient: str
    bounce_activity_id: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class FeedActivity:
    id: int
    dedupe_key: str
    content_hash: str
    collision: bool
    message_id: str | None
    direction: str
    subject: str
    text_body: str | None
    html_body: str | None
    text_body_ref: str | None
    html_body_ref: str | None
    sent_at: datetime | None
    received_at: datetime | None
    copy_kind: str
    delivery_path: str
    customer: str
    parent_id: int | None
    correlation_method: str
    regarding: str
    correlation_refused: str
    created_at: datetime
    updated_at: datetime
    user_edited_at: datetime | None
    deleted_at: datetime | None
    mailboxes: tuple[FeedMailbox, ...] = ()
    parties: tuple[FeedParty, ...] = ()
    attachments: tuple[FeedAttachment, ...] = ()
    delivery_failures: tuple[FeedDeliveryFailure, ...] = ()

    def __post_init__(self) -> None:
        _millis(self, ("created_at", "updated_at"),
                ("sent_at", "received_at", "user_edited_at", "deleted_at"))
        _tuples(self, ("mailboxes", "parties", "attachments", "delivery_failures"))


@dataclass(frozen=True, slots=True)
class FeedCase:
    id: int
    number: str
    title: str
    customer: str
    queue_id: str
    rule_item: str
    status: str
    resolved_at: datetime | None
    originating_activity_id: int | None
    provisional: bool
    reopened_count: int
    created_at: datetime
    updated_at: datetime
    user_edited_at: datetime | None
    deleted_at: datetime | None

    def __post_init__(self) -> None:
        _millis(self, ("created_at", "updated_at"),
                ("resolved_at", "user_edited_at", "deleted_at"))


@dataclass(frozen=True, slots=True)
class FeedQueueItem:
    queue_id: str
    activity_id: int
    rule_item: str
    created_at: datetime
    deleted_at: datetime | None

    def __post_init__(self) -> None:
        _millis(self, ("created_at",), ("deleted_at",))


@dataclass(frozen=True, slots=True)
class FeedContact:
    id: str
    first_name: str
    last_name: str
    account_id: str | None
    owner_id: str | None
    addresses: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        _millis(self, ("created_at", "updated_at"))
        _tuples(self, ("addresses",))


@dataclass(frozen=True, slots=True)
class RecordChange(AvroMapped):
    SCHEMA: ClassVar[str] = "record_change"

    record_type: str
    record_id: str
    seq: int  # the outbox sequence of the change that made the relay send it; not an order
    changed_at: datetime  # the time of the transaction that made that change
    writer: str = ""  # 'persist', or '' for any other writer (a CRM user, an import)
    activity: FeedActivity | None = None
    case: FeedCase | None = None
    queue_item: FeedQueueItem | None = None
    contact: FeedContact | None = None
    published_at: datetime = field(default_factory=now_millis)  # when the relay read the state

    def __post_init__(self) -> None:
        check_choice("record_type", self.record_type, RECORD_TYPES)
        _millis(self, ("changed_at", "published_at"))

    @property
    def key(self) -> str:
        return feed_key(self.record_type, self.record_id)
