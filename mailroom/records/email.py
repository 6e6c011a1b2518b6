"""Email: one original email, parsed and normalised by unwrap (topic ``unwrapped``).

Keyed by :attr:`Email.dedupe_key`; the ARCHITECTURE brief defines the dedupe key and content
hash (``unwrap.normalise`` computes both). Choices are strings, not Avro enums, as in the other
records: an enum cannot gain a symbol and stay readable by older readers.

Large attachment bytes never travel inside the record: the attachment carries ``blob_ref`` (the
sha256 hex in the blob store) and the bytes ride along in :attr:`Email.blobs`, which is *not*
serialised — the stage writes them to the blob store before it produces the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from mailroom.records.avro import NOT_SERIALISED, AvroMapped
from mailroom.records.base import check_choice, optional_utc_millis, set_field

#: How the copy reached us, richest first (the brief's copy precedence).
COPY_KINDS: tuple[str, ...] = (
    "direct", "forwarded_rfc822", "forwarded_eml", "msg", "tnef", "inline",
)
#: What kind of report the email is, if any (``none`` for ordinary mail). ``auto_reply`` came
#: with schema v2: a reader older than that refuses it, so route is upgraded before unwrap.
REPORT_KINDS: frozenset[str] = frozenset({
    "none", "bounce", "delayed", "delivery_status", "read_receipt", "feedback_report",
    "auto_reply", "other",
})
DIRECTIONS: frozenset[str] = frozenset({"incoming", "outgoing"})


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    address: str  # addr-spec, domain lower-cased; compare case-insensitively


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content_type: str
    size: int
    sha256: str
    content: bytes | None = None
    blob_ref: str | None = None  # sha256 hex in the blob store
    content_id: str | None = None
    inline: bool = False
    omitted: str | None = None  # why neither content nor blob_ref is set (e.g. over the limit)


@dataclass(frozen=True, slots=True)
class Markers:
    """Headers route uses for loop and auto-reply protection, verbatim (decoded)."""

    auto_submitted: str | None = None
    precedence: str | None = None
    list_id: str | None = None
    x_auto_response_suppress: str | None = None
    x_autoreply: str | None = None
    x_autorespond: str | None = None  # schema v2
    return_path: str | None = None  # schema v2; "<>" is the null sender of bounces
    sensitivity: str | None = None  # schema v4; Private/Confidential mail is not tracked


@dataclass(frozen=True, slots=True)
class Report:
    kind: str = "none"
    detail: str | None = None  # report-type, feedback-type or disposition
    failed_recipients: tuple[str, ...] = ()
    # Normalised Message-ID of the email a delivery-status report returns (its returned
    # message/rfc822 or text/rfc822-headers part): how a bounce finds its original.
    original_message_id: str | None = None

    def __post_init__(self) -> None:
        check_choice("report kind", self.kind, REPORT_KINDS)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where this copy was received and how it reached us."""

    mailbox_id: str
    mailbox_address: str
    owner_kind: str
    owner_id: str | None
    folder: str
    copy_kind: str
    raw_identity: str = ""
    path: tuple[str, ...] = ()  # e.g. ("part 2: message/rfc822", "attachment a.eml")
    forwarded_by_user: str | None = None
    forwarder_address: str | None = None
    forward_mailbox_id: str | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    # schema v3: a queue's forward (its mailbox is "via" a forward mailbox too); at most one of
    # forwarded_by_user and forwarded_by_queue is set
    forwarded_by_queue: str | None = None

    def __post_init__(self) -> None:
        check_choice("copy_kind", self.copy_kind, COPY_KINDS)


@dataclass(frozen=True, slots=True)
class Blob:
    """Bytes for the blob store, keyed by their sha256 hex."""

    ref: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Email(AvroMapped):
    SCHEMA: ClassVar[str] = "email"

    dedupe_key: str
    content_hash: str
    subject: str
    direction: str
    delivery: Delivery
    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    thread_index: str | None = None
    thread_topic: str | None = None
    from_address: Address | None = None
    sender: Address | None = None
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    date: datetime | None = None
    markers: Markers = Markers()
    report: Report = Report()
    text_body: str | None = None
    html_body: str | None = None
    attachments: tuple[Attachment, ...] = ()
    warnings: tuple[str, ...] = ()  # what was cut, omitted or guessed, in words
    blobs: tuple[Blob, ...] = field(default=(), compare=False, repr=False,
                                    metadata=NOT_SERIALISED)  # to the blob store, not Kafka

    def __post_init__(self) -> None:
        check_choice("direction", self.direction, DIRECTIONS)
        set_field(self, "date", optional_utc_millis(self.date))

    def every_address(self) -> list[str]:
        """The address of everyone on the email — From, Sender, Reply-To, To, Cc, Bcc — as
        written (the privacy screen and the erasure list each normalise their own way)."""
        people = [self.from_address, self.sender, *self.reply_to, *self.to, *self.cc,
                  *self.bcc]
        return [a.address for a in people if a is not None and a.address]
