"""What the dashboard tests show, seeded through the product's own code on the real stack:
a mailbox on a real Dovecot user (ingest's store), a dead letter (the kernel's
DeadLetterWriter on this test's dlq topic) and an email activity with a case (route's plan,
applied by persist's own batch apply)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from pipeline_testing import REFERENCE_SQL

from ingest import credentials, store
from ingest.model import Mailbox, OwnerKind, Profile, Protocol, Tls
from mailroom.codec import Codec
from mailroom.deadletters import DeadLetterWriter
from mailroom.kafka import make_producer
from mailroom.records.email import Address, Delivery, Email
from mailroom.settings import Settings
from mailroom.stage.types import Source
from persist.batch import Item, apply_batch
from route.config import from_document
from route.plan import plan
from route.reference import AddressMatch, RecordRef, ReferenceData
from route.reference import Mailbox as RouteMailbox

EVIL_SUBJECT = "<script>alert(1)</script> printer on fire"

RULES = {
    "track": {"default": "replies", "owners": {"queue:support": "all"}},
    "queues": {"support": {"rules": [
        {"name": "known customers", "sender": "known", "create_case": True}]}},
}


def add_mailbox(db: psycopg.Connection, settings: Settings, user: str, password: str) -> int:
    pid = store.add_profile(db, Profile(f"p-{user}", Protocol.IMAP, "127.0.0.1",
                                        settings.imap_port, tls=Tls.NONE))
    mid = store.add_mailbox(db, Mailbox(
        f"{user}@example.com", OwnerKind.QUEUE, pid, user,
        credentials.encrypt(settings, password), owner_id="support"))
    db.commit()
    return mid


def dead_letter(settings: Settings, codec: Codec) -> tuple[int, int]:
    """A raw record unwrap gave up on, as the stage runner would dead-letter it; returns the
    letter's (partition, offset) on the dlq topic."""
    producer = make_producer(settings)
    try:
        writer = DeadLetterWriter(producer, codec, settings)
        source = Source(settings.topic("raw"), 0, 7, b"mbx/INBOX/1/7", b"not a raw record",
                        int(time.time() * 1000))
        meta = writer.send_and_wait("unwrap", "mime_unparseable", "no MIME structure",
                                    source, 1)
        return meta.partition, meta.offset
    finally:
        producer.close()


@dataclass
class Seeded:
    activity_id: int
    case_id: int
    dedupe_key: str


def activity(db: psycopg.Connection, codec: Codec, subject: str = EVIL_SUBJECT) -> Seeded:
    """An incoming email to the support queue from a known contact: route plans it (activity
    and case), persist applies the plan in one transaction, as the stage does."""
    db.execute(REFERENCE_SQL)
    db.commit()
    message_id = f"{uuid.uuid4().hex[:12]}@customer.example"
    support = RecordRef("queue", "support")
    email = Email(
        dedupe_key=message_id, content_hash="h-" + message_id, subject=subject,
        direction="incoming",
        delivery=Delivery(mailbox_id="10", mailbox_address="support@acme.example",
                          owner_kind="queue", owner_id="support", folder="INBOX",
                          copy_kind="direct"),
        message_id=message_id, from_address=Address("Ann <b>Example</b>", "ann@customer.example"),
        to=(Address("", "support@acme.example"),), date=datetime.now(UTC),
        text_body="It is on fire.",
    )
    reference = ReferenceData(
        addresses={
            "support@acme.example": (AddressMatch(support),),
            "ann@customer.example": (AddressMatch(
                RecordRef("contact", "c-ann"), owner="alice",
                customer=RecordRef("account", "a-customer")),),
        },
        mailboxes={"10": RouteMailbox("10", "support@acme.example", support)},
    )
    p = plan(email, reference, from_document(RULES), codec.encode_record(email))
    with db.transaction():
        apply_batch(db, codec, [Item(p, codec.encode_record(p), 1_000)])
    row = db.execute("SELECT a.id, c.id FROM email_activities a JOIN cases c "
                     "ON c.originating_activity_id = a.id WHERE a.dedupe_key = %s",
                     (message_id,)).fetchone()
    assert row is not None, "persist stored no activity with a case"
    return Seeded(int(row[0]), int(row[1]), message_id)


@dataclass
class Running:
    """A dashboard started by the ``dashboard`` fixture: where it is, its accounts by role
    name (viewer, operator, admin → (account, password)) and the application object."""

    url: str
    logins: dict[str, tuple[str, str]]
    settings: Settings
    app: Any = None

    @property
    def admin(self) -> tuple[str, str]:
        return self.logins["admin"]
