"""The route stage on the real broker and database: Emails in, plans out, through a crash.

``mailroom run route`` runs as a subprocess (the real entry point, process isolation: the
handler and its ``setup`` hook run in a spawned worker), pointed at this test's topics and
database schema through ``MAILROOM_*``. Reference records, mailboxes and rules are in that
schema. The plans are read back from the actions topic itself and compared with what the pure
``route.plan.plan`` makes of each email with the same reference data.

The crash: SIGKILL at the runner's fault point ``route:after_produce`` (outputs flushed, offsets
not committed), then a restart. Only the interrupted batch — the records past the committed
offsets whose plans were already on the topic — may have a second plan; every email has one.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pipeline_testing
import psycopg
import pytest
from pipeline_testing import (
    REFERENCE_SQL,
    own_schema,
    own_topics,
    produce,
    read_events,
    start_stage,
)
from routebuild import RULES, email

from ingest import announce, credentials
from ingest import store as mailbox_store
from ingest.model import Mailbox, OwnerKind, Profile, Protocol
from mailroom import kafka
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.mailboxes import MailboxDirectory
from mailroom.records.action import Plan
from mailroom.records.email import Email, Markers
from mailroom.settings import Settings
from route import loader, store
from route.config import from_document
from route.plan import plan

pytestmark = pytest.mark.integration

PARTITIONS = 3
EMAILS = 45
FIELDS = ("topic_prefix", "database_url", "kafka_session_timeout_ms",
          "kafka_heartbeat_interval_ms", "stage_max_poll_records", "topic_partitions")


@pytest.fixture
def route_stack(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    """Own topics (as `mailroom topics create` makes them) and an own schema with reference
    records, mailboxes and rules loaded."""
    with own_schema(
        isolated_settings, f"routei_{unique_name}", prepare=load_reference_and_rules,
        topic_partitions=PARTITIONS, kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=2000, stage_max_poll_records=6,
    ) as settings, own_topics(settings):
        yield settings


def load_reference_and_rules(conn: psycopg.Connection) -> None:
    conn.execute(REFERENCE_SQL)
    store.save(conn, from_document(RULES), "test")


def add_mailboxes(conn: psycopg.Connection, settings: Settings) -> tuple[str, str]:
    """The support queue's mailbox and Alice's own: their ids."""
    pid = mailbox_store.add_profile(conn, Profile("corp", Protocol.IMAP, "imap.acme.example", 993))
    secret = credentials.encrypt(settings, "pw")
    support = mailbox_store.add_mailbox(conn, Mailbox(
        "support@acme.example", OwnerKind.QUEUE, pid, "support", secret, owner_id="support"))
    alice = mailbox_store.add_mailbox(conn, Mailbox(
        "alice@acme.example", OwnerKind.USER, pid, "alice", secret, owner_id="alice"))
    conn.commit()
    announce.publish_now(settings, conn)  # route reads mailboxes from their topic
    return str(support), str(alice)


def emails(support: str, alice: str) -> list[Email]:
    """Mostly support mail from a known customer (a case each); every fifth in Alice's own
    mailbox (her filter tracks replies only); every seventh an auto-reply (never a case)."""
    out = []
    for i in range(EMAILS):
        mailbox, owner = (alice, "user:alice") if i % 5 == 4 else (support, "queue:support")
        markers = Markers(auto_submitted="auto-replied") if i % 7 == 6 else Markers()
        out.append(email(mailbox=mailbox, owner=owner, message_id=f"m{i}@customer.example",
                         subject=f"Printer {i}", markers=markers))
    return out


def read_all(settings: Settings, role: str) -> list[Any]:
    return pipeline_testing.read_all(settings, role, timeout=20)


def committed(settings: Settings) -> dict[int, int]:
    group = f"{settings.topic_prefix}.route"
    admin = kafka.make_admin(settings)
    try:
        got = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {tp.partition: om.offset for tp, om in got.items()
            if tp.topic == settings.topic("unwrapped")}


def run_route(settings: Settings, fault: str = "") -> subprocess.Popen[bytes]:
    return start_stage(settings, "route", FIELDS, stderr=subprocess.PIPE,
                       MAILROOM_FAULT_POINTS=fault)


def test_emails_in_plans_out_through_a_crash(route_stack: Settings) -> None:
    settings = route_stack
    codec = Codec.from_settings(settings)
    with connect(settings) as conn:
        support, alice = add_mailboxes(conn, settings)
        directory = MailboxDirectory(settings)
        try:
            reference = loader.load(conn, directory.sync())
        finally:
            directory.close()
        config = store.load(conn)
    sent = emails(support, alice)
    encoded = {e.dedupe_key: codec.encode_record(e) for e in sent}
    produce(settings, settings.topic("unwrapped"),
            [(key.encode(), value) for key, value in encoded.items()])
    by_partition = {(r.partition, r.offset): r.key.decode()
                    for r in read_all(settings, "unwrapped")}
    assert len(by_partition) == EMAILS

    # 1. Die after the second batch's plans are flushed, before its offsets are committed.
    crashed = run_route(settings, "route:after_produce@2")
    _, err = crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL, err.decode()[-3000:]
    done = committed(settings)
    before = Counter(r.key.decode() for r in read_all(settings, "actions"))
    interrupted = {key for (p, off), key in by_partition.items()
                   if off >= done.get(p, 0) and key in before}
    assert interrupted, "the fault fired with no plan of the batch on the topic"
    assert len(before) < EMAILS  # it died part-way

    # 2. Restart: every email gets its plan; only the interrupted batch may have two.
    again = run_route(settings)
    try:
        deadline = time.monotonic() + 90
        while len({r.key for r in read_all(settings, "actions")}) < EMAILS:
            assert again.poll() is None, again.communicate()[1].decode()[-3000:]
            assert time.monotonic() < deadline, "route did not catch up"
            time.sleep(0.5)
    finally:
        again.send_signal(signal.SIGTERM)
        _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err.decode()[-3000:]

    records = read_all(settings, "actions")
    counts = Counter(r.key.decode() for r in records)
    assert set(counts) == set(encoded)
    doubled = {k for k, n in counts.items() if n > 1}
    assert doubled <= interrupted and max(counts.values()) <= 2, (doubled, interrupted)

    # 3. Each plan is exactly what the pure planner makes of that email with the loaded data.
    for r in records:
        key = r.key.decode()
        got = codec.decode_record(r.value, Plan)
        source = next(e for e in sent if e.dedupe_key == key)
        assert got == plan(source, reference, config, encoded[key]), key
    plans = {r.key.decode(): codec.decode_record(r.value, Plan) for r in records}
    kinds = {k: [s.kind for s in p.steps] for k, p in plans.items()}
    assert "create_or_update_case" in kinds["m0@customer.example"]  # known customer → case
    assert plans["m0@customer.example"].accepting_owner == "queue:support"
    assert "create_or_update_case" not in kinds["m6@customer.example"]  # an auto-reply
    alices = plans["m4@customer.example"]
    assert alices.skipped or any(s.condition is not None for s in alices.steps)

    # 4. A trace event per email (routed or skipped), from the stage itself.
    events = read_events(settings)
    traced = {t.key for t in events if t.stage == "route" and t.event in ("routed", "skipped")}
    assert traced == set(encoded)
