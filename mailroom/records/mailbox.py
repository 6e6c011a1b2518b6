"""MailboxRecord: one monitored mailbox as configured (compacted topic ``mailboxes``).

Derived from PostgreSQL, where the configuration lives; the topic lets ingest processes share
mailboxes by consumer-group assignment and lets other stages read configuration without a
database round trip. It never carries credentials: ingest reads those from the database at
login time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from mailroom.records.avro import AvroMapped
from mailroom.records.base import check_choice, now_millis, set_field, utc_millis
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

    def __post_init__(self) -> None:
        check_choice("owner_kind", self.owner_kind, OWNER_KINDS)
        check_choice("protocol", self.protocol, PROTOCOLS)
        check_choice("after_ingest", self.after_ingest, AFTER_INGEST)
        set_field(self, "folders", tuple(self.folders))
        set_field(self, "outgoing_folders", tuple(self.outgoing_folders))
        set_field(self, "updated_at", utc_millis(self.updated_at))

    @property
    def runnable(self) -> bool:
        return self.enabled and self.approved
