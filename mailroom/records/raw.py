"""RawMail: one message exactly as fetched from a monitored mailbox (topic ``raw``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from mailroom.records.avro import AvroMapped
from mailroom.records.base import (
    check_choice,
    optional_utc_millis,
    set_field,
    utc_millis,
)

OwnerKind = Literal["user", "queue", "forward"]
Direction = Literal["incoming", "outgoing"]
Protocol = Literal["imap", "pop3"]

OWNER_KINDS: frozenset[str] = frozenset({"user", "queue", "forward"})
DIRECTIONS: frozenset[str] = frozenset({"incoming", "outgoing"})
PROTOCOLS: frozenset[str] = frozenset({"imap", "pop3"})


def raw_identity(
    mailbox_id: str,
    protocol: str,
    folder: str = "",
    uidvalidity: int | None = None,
    uid: int | None = None,
    uidl: str | None = None,
) -> str:
    """The message's identity on its server: the Kafka key of the raw topic.

    IMAP: ``{mailbox_id}/{folder}/{uidvalidity}/{uid}``; POP3: ``{mailbox_id}/pop3/{uidl}``.
    Ingest can compute it before building the record (e.g. for checkpoints and traces).
    """
    if protocol == "imap":
        if uidvalidity is None or uid is None:
            raise ValueError("an IMAP message needs uidvalidity and uid")
        return f"{mailbox_id}/{folder}/{uidvalidity}/{uid}"
    if protocol == "pop3":
        if not uidl:
            raise ValueError("a POP3 message needs a uidl")
        return f"{mailbox_id}/pop3/{uidl}"
    raise ValueError(f"unknown protocol {protocol!r}")


@dataclass(frozen=True, slots=True)
class RawMail(AvroMapped):
    SCHEMA: ClassVar[str] = "raw_mail"

    mailbox_id: str
    mailbox_address: str
    owner_kind: OwnerKind
    folder: str
    direction: Direction
    protocol: Protocol
    fetched_at: datetime
    size: int
    owner_id: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    uidl: str | None = None
    server_date: datetime | None = None
    content: bytes | None = None
    blob_ref: str | None = None  # sha256 hex in the blob store (claim check)

    def __post_init__(self) -> None:
        check_choice("owner_kind", self.owner_kind, OWNER_KINDS)
        check_choice("direction", self.direction, DIRECTIONS)
        check_choice("protocol", self.protocol, PROTOCOLS)
        if (self.content is None) == (self.blob_ref is None):
            raise ValueError("exactly one of content and blob_ref must be set")
        if self.blob_ref is not None and (
            len(self.blob_ref) != 64 or self.blob_ref.strip("0123456789abcdef")
        ):
            raise ValueError(f"blob_ref must be a lower-case sha256 hex, got {self.blob_ref!r}")
        set_field(self, "fetched_at", utc_millis(self.fetched_at))
        set_field(self, "server_date", optional_utc_millis(self.server_date))
        self.identity  # noqa: B018 - validates the server coordinates early

    @property
    def identity(self) -> str:
        """The Kafka key: see :func:`raw_identity`."""
        return raw_identity(
            self.mailbox_id, self.protocol, self.folder, self.uidvalidity, self.uid, self.uidl
        )
