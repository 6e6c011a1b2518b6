"""MailboxRecord: one monitored mailbox as configured (compacted topic ``mailboxes``).

Derived from PostgreSQL, where ingest keeps the configuration; the topic lets ingest processes
share mailboxes by consumer-group assignment, and is how the other stages read that
configuration (:mod:`mailroom.mailboxes`): never ingest's tables. So it carries everything they
decide with — owner, forward mailbox, approval, the Authentication-Results check, "process email
from" (schema v2). It never carries credentials: ingest reads those from the database at login
time.
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
from mailroom.records.raw import OWNER_KINDS, PROTOCOLS

AFTER_INGEST: frozenset[str] = frozenset({"flag", "move", "delete"})


@dataclass(frozen=True, slots=True)
class MailboxRecord(AvroMapped):
    SCHEMA: ClassVar[str] = "mailbox"

    mailbox_id: str  # the Kafka key
    address: str
    owner_kind: str
    profile: str
    protocol: str
    host: str
    port: int
    folders: tuple[str, ...]
    after_ingest: str
    enabled: bool
    approved: bool
    status: str
    owner_id: str | None = None
    via_mailbox_id: str | None = None
    outgoing_folders: tuple[str, ...] = ()
    status_detail: str = ""
    updated_at: datetime = field(default_factory=now_millis)
    #: schema v2: a forward mailbox's Authentication-Results check (off: believed on From alone)
    check_auth_results: bool = True
    #: schema v2: when approval was last decided; not approved and None is *pending*
    approval_at: datetime | None = None
    #: schema v2: the mailbox's own "process email from" (None: the profile's received-after)
    process_from: datetime | None = None

    def __post_init__(self) -> None:
        check_choice("owner_kind", self.owner_kind, OWNER_KINDS)
        check_choice("protocol", self.protocol, PROTOCOLS)
        check_choice("after_ingest", self.after_ingest, AFTER_INGEST)
        set_field(self, "folders", tuple(self.folders))
        set_field(self, "outgoing_folders", tuple(self.outgoing_folders))
        set_field(self, "updated_at", utc_millis(self.updated_at))
        set_field(self, "approval_at", optional_utc_millis(self.approval_at))
        set_field(self, "process_from", optional_utc_millis(self.process_from))

    @property
    def runnable(self) -> bool:
        return self.enabled and self.approved

    @property
    def approval(self) -> str:
        """approved | pending | rejected (as ingest's model says it)."""
        if self.approved:
            return "approved"
        return "pending" if self.approval_at is None else "rejected"
