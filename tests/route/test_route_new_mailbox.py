"""Route takes a mailbox's owner from the mailbox directory (the mailboxes topic): a mailbox
added a moment before its mail was written gives that mail its owner, through the real stage
process (``mailroom run route``: the runner reads the directory before every batch and hands
its worker the changes), and a mailbox changed or deleted later is decided as it is now.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from pipeline_testing import (
    REFERENCE_SQL,
    own_schema,
    own_topics,
    produce,
    read_all,
    start_stage,
    stop,
    wait_for,
)
from routebuild import RULES, config, email, reference

from mailroom.codec import Codec
from mailroom.records.action import Plan
from mailroom.records.email import Email
from mailroom.records.mailbox import MailboxRecord
from mailroom.settings import Settings
from mailroom.stage.types import Context, Source
from route import stage, store
from route.config import from_document

FIELDS = ("topic_prefix", "database_url", "kafka_session_timeout_ms",
          "kafka_heartbeat_interval_ms")


def mailbox(mid: str, owner: str, **changes: object) -> MailboxRecord:
    return MailboxRecord(
        mailbox_id=mid, address=f"{owner}@acme.example", owner_kind="queue", profile="corp",
        protocol="imap", host="imap.acme.example", port=993, folders=("INBOX",),
        after_ingest="flag", enabled=True, approved=True, status="ok", owner_id=owner,
        **changes)  # type: ignore[arg-type]


def test_the_runners_copy_replaces_the_snapshots_mailboxes() -> None:
    handler = stage.RouteHandler(None, stage.Snapshot(reference(), config(), time.monotonic()))
    # Its mail carries no owner of its own: the mailbox's configuration says whose it is.
    mail = email(mailbox="20", owner="queue:", message_id="new-box@customer.example")
    context = Context("route", Source("t.unwrapped", 0, 7, b"k", b"", 0))
    (unknown,) = handler(mail, context).traces
    assert unknown.event == "skipped"

    handler.use_mailboxes({"20": mailbox("20", "support")})
    (trace,) = handler(mail, context).traces
    assert trace.event == "routed" and trace.detail["accepted_by"] == "queue:support"


def load_rules(conn: psycopg.Connection) -> None:
    conn.execute(REFERENCE_SQL)
    store.save(conn, from_document(RULES), "test")


@pytest.fixture
def route_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    with own_schema(isolated_settings, f"routenew_{unique_name}", prepare=load_rules,
                    topic_partitions=1, kafka_session_timeout_ms=6000,
                    kafka_heartbeat_interval_ms=2000) as settings, own_topics(settings):
        yield settings


@pytest.mark.integration
def test_mail_of_a_mailbox_added_just_before_it_gets_its_owner_through_the_stage(
        route_settings: Settings) -> None:
    s = route_settings
    codec = Codec.from_settings(s)

    def publish(*records: MailboxRecord | tuple[str, None]) -> None:
        produce(s, s.topic("mailboxes"), [
            (r[0].encode(), None) if isinstance(r, tuple)
            else (r.mailbox_id.encode(), codec.encode_record(r)) for r in records])

    def send(mail: Email) -> None:
        produce(s, s.topic("unwrapped"), [(mail.dedupe_key.encode(), codec.encode_record(mail))])

    def plan_of(message_id: str) -> Plan:
        def found() -> Plan | None:
            plans = [codec.decode_record(r.value, Plan) for r in read_all(s, "actions")]
            return next((p for p in plans if p.dedupe_key == message_id), None)
        return wait_for(found, timeout=90)

    publish(mailbox("10", "support"))
    proc = start_stage(s, "route", FIELDS)
    try:
        # The stage has read the directory (and its worker has its copy) once this is planned.
        send(email(mailbox="10", owner="queue:", message_id="first@customer.example"))
        assert plan_of("first@customer.example").accepting_owner == "queue:support"

        # Published a moment before its mail, after the stage's last read: the mail has it.
        publish(mailbox("20", "sales"))
        send(email(mailbox="20", owner="queue:", message_id="new-box@customer.example",
                   to=("sales@acme.example",)))
        assert plan_of("new-box@customer.example").accepting_owner == "queue:sales"

        # Changed, and deleted: decided as the directory says now, not as the worker first saw.
        publish(mailbox("10", "sales"), ("20", None))
        send(email(mailbox="10", owner="queue:", message_id="moved@customer.example",
                   to=("sales@acme.example",)))
        send(email(mailbox="20", owner="queue:", message_id="gone@customer.example",
                   to=("sales@acme.example",)))
        assert plan_of("moved@customer.example").accepting_owner == "queue:sales"
        gone = plan_of("gone@customer.example")
        assert gone.skipped and not gone.accepting_owner
    finally:
        stop(proc, timeout=90)
    assert read_all(s, "dlq") == []
