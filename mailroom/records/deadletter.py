"""DeadLetter: a message a stage gave up on, with what is needed to replay it (topic ``dlq``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from mailroom.records.avro import AvroMapped
from mailroom.records.base import now_millis, optional_utc_millis, set_field, utc_millis


@dataclass(frozen=True, slots=True)
class DeadLetter(AvroMapped):
    SCHEMA: ClassVar[str] = "dead_letter"

    stage: str
    reason_code: str  # short machine code, e.g. "mime_unparseable", "crash_loop"
    reason: str  # human text: what went wrong
    attempts: int
    source_topic: str
    source_partition: int
    source_offset: int
    source_key: bytes | None = None
    payload: bytes | None = None  # the original record value, when small enough to carry
    blob_ref: str | None = None  # else its sha256 in the blob store
    failed_at: datetime = field(default_factory=now_millis)
    retries: int = 0  # how many times `mailroom dlq retry` already sent it back
    original_timestamp: datetime | None = None  # the source record's Kafka timestamp

    def __post_init__(self) -> None:
        if self.payload is not None and self.blob_ref is not None:
            raise ValueError("a dead letter carries the payload or its blob_ref, not both")
        set_field(self, "failed_at", utc_millis(self.failed_at))
        set_field(self, "original_timestamp", optional_utc_millis(self.original_timestamp))
