"""One valid instance of every kernel record, for codec and Kafka round-trip tests."""

from __future__ import annotations

from datetime import UTC, datetime

from mailroom.records import DeadLetter, Plan, RawMail, Step, TraceBatch, TraceEvent
from mailroom.records.base import AvroRecord

AT = datetime(2026, 11, 27, 9, 30, 15, 123000, tzinfo=UTC)


def raw_mail(content: bytes = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n") -> RawMail:
    return RawMail(
        mailbox_id="mbx-1",
        mailbox_address="forward@example.com",
        owner_kind="forward",
        owner_id=None,
        folder="INBOX",
        direction="incoming",
        protocol="imap",
        uidvalidity=1700000000,
        uid=42,
        server_date=AT,
        fetched_at=AT,
        size=len(content),
        content=content,
    )


def samples() -> list[AvroRecord]:
    return [
        raw_mail(),
        RawMail(
            mailbox_id="mbx-2",
            mailbox_address="queue@example.com",
            owner_kind="queue",
            owner_id="q-7",
            folder="INBOX",
            direction="incoming",
            protocol="pop3",
            uidl="000001a2",
            fetched_at=AT,
            size=5_000_000,
            blob_ref="ab" * 32,
        ),
        TraceEvent(
            key="<x@example.com>",
            stage="unwrap",
            event="unwrapped",
            at=AT,
            message_id="<x@example.com>",
            dedupe_key="x@example.com",
            raw_identity="mbx-1/INBOX/1700000000/42",
            source_topic="mailroom.raw",
            source_partition=3,
            source_offset=1234,
            detail={"originals": "2", "why": "forwarded as message/rfc822"},
        ),
        TraceBatch(events=(
            TraceEvent(key="x@example.com", stage="route", event="routed", at=AT,
                       dedupe_key="x@example.com", detail={"rule": "track"}),
            TraceEvent(key="y@example.com", stage="route", event="skipped", at=AT,
                       detail={"reason": "automated"}),
        )),
        DeadLetter(
            stage="unwrap",
            reason_code="mime_unparseable",
            reason="no boundary found",
            attempts=1,
            source_topic="mailroom.raw",
            source_partition=0,
            source_offset=7,
            source_key=b"mbx-1/INBOX/1/2",
            payload=b"\xc3\x01broken",
            failed_at=AT,
            retries=1,
            original_timestamp=AT,
        ),
        Plan(
            dedupe_key="x@example.com",
            content_hash="cd" * 32,
            email=b"\xc3\x01 an Email record's bytes",
            steps=[Step(kind="upsert_email_activity", key="email:x@example.com")],
        ),
    ]
