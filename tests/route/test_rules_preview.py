"""``mailroom rules preview FILE``: the differences a candidate rules file would make, on the
real broker and database, and proof that previewing leaves no trace (no group offsets, no rows).

The rules in force are routebuild's RULES plus ``user:bob = "known"``; the candidate tracks all
of Bob's mail (an unknown sender's email becomes tracked), stops the "known customers" rule
from opening cases and drops "everyone else" (no queue item for unknown senders). One email
older than the window changes too, and must not be counted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
from pipeline_testing import REFERENCE_SQL, own_schema, own_topics, produce, stage_env
from routebuild import RULES, email, reference

from ingest import announce, credentials
from ingest import store as mailbox_store
from ingest.model import Mailbox, OwnerKind, Profile, Protocol
from mailroom import kafka
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.errors import ConfigError
from mailroom.settings import Settings
from route import preview, store
from route.config import from_document
from route.plan import plan

CURRENT: dict[str, Any] = {
    **RULES,
    "track": {"default": "replies",
              "owners": {"queue:support": "all", "queue:sales": "all", "user:bob": "known"}},
}
CANDIDATE = """
[track]
default = "replies"
owners = { "queue:support" = "all", "queue:sales" = "all", "user:bob" = "all" }

[[queues.support.rules]]
name = "urgent"
subject = '\\burgent\\b'
create_case = true
[[queues.support.rules]]
name = "known customers"
sender = "known"
create_case = false
create_queue_item = true

[cases]
reopen_window_days = 14
rate_limit_cases = 3
rate_limit_window_hours = 1
"""
STRANGER = "stranger@elsewhere.example"


# --- the pure comparison -------------------------------------------------------------------


def test_since_reads_minutes_hours_days_weeks() -> None:
    assert preview.parse_since("7d") == timedelta(days=7)
    assert preview.parse_since("12h") == timedelta(hours=12)
    assert preview.parse_since("2w") == timedelta(weeks=2)
    for bad in ("7", "0d", "d", "7y", "-1d"):
        with pytest.raises(ConfigError):
            preview.parse_since(bad)


def test_compare_names_each_kind_of_change_and_the_deciding_rule() -> None:
    ref = reference()
    current, candidate = from_document(CURRENT), from_document(_candidate_doc())
    known = email(mailbox="10", message_id="k@customer.example")
    kinds = {c.kind: c for c in preview.compare(
        known, plan(known, ref, current), plan(known, ref, candidate))}
    assert set(kinds) == {"case_not_created"}
    assert "known customers" in kinds["case_not_created"].rule
    assert kinds["case_not_created"].before == "queue:support rule 2 'known customers'"
    assert kinds["case_not_created"].after == "none"

    bobs = email(mailbox="12", owner="user:bob", sender=STRANGER, to=("bob@acme.example",),
                 message_id="b@elsewhere.example")
    changes = preview.compare(bobs, plan(bobs, ref, current), plan(bobs, ref, candidate))
    assert [c.kind for c in changes] == ["newly_tracked"]
    assert changes[0].before == "skipped" and changes[0].after == "tracked for user:bob"
    assert "tracks all" in changes[0].rule

    stranger = email(mailbox="10", sender=STRANGER, message_id="s@elsewhere.example")
    changes = preview.compare(stranger, plan(stranger, ref, current),
                              plan(stranger, ref, candidate))
    assert [(c.kind, c.after) for c in changes] == [("queue_item_not_created", "none")]
    assert changes[0].rule.startswith("none:")  # no rule item fired under the candidate

    same = email(mailbox="10", sender=STRANGER, subject="URGENT: down",
                 message_id="u@elsewhere.example")
    assert preview.compare(same, plan(same, ref, current), plan(same, ref, candidate)) == []


def test_compare_sees_correlation_candidates_and_contacts() -> None:
    ref = reference()
    current = from_document(CURRENT)
    candidate = from_document({**CURRENT, "correlation": {"smart": True},
                               "track": {**CURRENT["track"],
                                         "create_contacts": {"queue:support": True}}})
    known = email(mailbox="10", message_id="k@customer.example", subject="Re: Printer")
    (smart,) = preview.compare(known, plan(known, ref, current), plan(known, ref, candidate))
    assert smart.kind == "correlation_changed" and smart.before == "none"
    assert smart.after.startswith("smart=")

    stranger = email(mailbox="10", sender=STRANGER, message_id="s@elsewhere.example")
    (contact,) = preview.compare(stranger, plan(stranger, ref, current),
                                 plan(stranger, ref, candidate))
    assert (contact.kind, contact.after) == ("contact_created", STRANGER)
    assert "creates contacts" in contact.rule


def _candidate_doc() -> dict[str, Any]:
    return tomllib.loads(CANDIDATE)


# --- on the real stack ---------------------------------------------------------------------


@pytest.fixture
def preview_stack(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    def prepare(conn: psycopg.Connection) -> None:
        conn.execute(REFERENCE_SQL)
        store.save(conn, from_document(CURRENT), "current.toml")

    with own_schema(isolated_settings, f"routep_{unique_name}", prepare=prepare) as settings, \
            own_topics(settings, {"unwrapped": 2, "mailboxes": 1}):
        yield settings


def add_mailboxes(conn: psycopg.Connection, settings: Settings) -> tuple[str, str]:
    """The support queue's mailbox and Bob's own: their ids."""
    pid = mailbox_store.add_profile(conn, Profile("corp", Protocol.IMAP, "imap.acme.example", 993))
    secret = credentials.encrypt(settings, "pw")
    support = mailbox_store.add_mailbox(conn, Mailbox(
        "support@acme.example", OwnerKind.QUEUE, pid, "support", secret, owner_id="support"))
    bob = mailbox_store.add_mailbox(conn, Mailbox(
        "bob@acme.example", OwnerKind.USER, pid, "bob", secret, owner_id="bob"))
    conn.commit()
    announce.publish_now(settings, conn)  # route reads mailboxes from their topic
    return str(support), str(bob)


def rows(conn: psycopg.Connection) -> dict[str, Any]:
    """Every table of the test's schema with its row count, and when the rules were loaded."""
    tables = [r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")]
    counts: dict[str, Any] = {
        t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone() for t in tables}
    counts["loaded"] = conn.execute("SELECT loaded_at, loaded_from FROM route_settings").fetchone()
    conn.rollback()
    return counts


def group_offsets(settings: Settings) -> dict[str, dict[TopicPartition, int]]:
    """The committed offsets on this test's unwrapped topic, per consumer group."""
    topic = settings.topic("unwrapped")
    admin = kafka.make_admin(settings)
    try:
        groups = [str(g["group_id"]) for g in admin.list_groups()]
        every = admin.list_group_offsets({g: None for g in groups}) if groups else {}
        out = {}
        for group, got in every.items():
            mine = {tp: om.offset for tp, om in got.items() if tp.topic == topic}
            if mine:
                out[group] = mine
        return out
    finally:
        admin.close()


def commit_route_position(settings: Settings) -> None:
    """The route stage's group, as if it had read the first record of partition 0."""
    consumer = KafkaConsumer(**kafka.consumer_config(settings, f"{settings.topic_prefix}.route"))
    try:
        tp = TopicPartition(settings.topic("unwrapped"), 0)
        consumer.commit({tp: OffsetAndMetadata(1, "", -1)})
    finally:
        consumer.close(autocommit=False)


def test_preview_reports_the_differences_and_leaves_no_trace(
    preview_stack: Settings, tmp_path: Path
) -> None:
    settings = preview_stack
    codec = Codec.from_settings(settings)
    with connect(settings) as conn:
        support, bob = add_mailboxes(conn, settings)
    sent = [
        email(mailbox=support, message_id="known-1@customer.example", subject="Printer 1"),
        email(mailbox=support, message_id="known-2@customer.example", subject="Printer 2"),
        email(mailbox=support, sender=STRANGER, message_id="s1@elsewhere.example"),
        email(mailbox=bob, owner="user:bob", sender=STRANGER, to=("bob@acme.example",),
              message_id="b1@elsewhere.example", subject="Hello Bob"),
    ]
    topic = settings.topic("unwrapped")
    produce(settings, topic, [(e.dedupe_key.encode(), codec.encode_record(e)) for e in sent])
    # Ten days old: outside a 7-day window, though the candidate would track it too.
    old = email(mailbox=bob, owner="user:bob", sender=STRANGER, to=("bob@acme.example",),
                message_id="old@elsewhere.example")
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    produce(settings, topic, [(b"old", codec.encode_record(old))],
            timestamp_ms=int(ten_days_ago.timestamp() * 1000))
    commit_route_position(settings)
    offsets_before = group_offsets(settings)
    with connect(settings) as conn:
        rows_before = rows(conn)

    rules = tmp_path / "candidate.toml"
    rules.write_text(CANDIDATE, encoding="utf-8")
    report = preview.run(settings, from_document(_candidate_doc()), timedelta(days=7), 5)

    assert report.emails == 4 and report.changed == 4 and report.unreadable == 0
    assert dict(report.counts) == {"newly_tracked": 1, "case_not_created": 2,
                                   "queue_item_not_created": 1}
    (tracked,) = report.examples["newly_tracked"]
    assert (tracked.dedupe_key, tracked.subject, tracked.sender) == (
        "b1@elsewhere.example", "Hello Bob", STRANGER)
    assert {c.dedupe_key for c in report.examples["case_not_created"]} == {
        "known-1@customer.example", "known-2@customer.example"}

    text = list(report.lines())
    assert text[0].startswith("4 emails since ") and "4 would be planned differently" in text[0]
    assert "newly tracked: 1" in text and "case not created: 2" in text
    assert "    skipped -> tracked for user:bob" in text
    assert text[-1].startswith("note: ")

    # The command itself, as a machine reads it: one example per kind with --limit 1.
    env = stage_env(settings, ("topic_prefix", "database_url"))
    mailroom = Path(sys.executable).with_name("mailroom")
    done = subprocess.run([str(mailroom), "rules", "preview", str(rules), "--since", "7d",
                           "--limit", "1", "--json"], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    data = json.loads(done.stdout)
    assert data["counts"] == {"newly_tracked": 1, "case_not_created": 2,
                              "queue_item_not_created": 1}
    assert [len(v) for v in data["examples"].values()] == [1, 1, 1]
    assert "persist" in data["note"]

    # Nothing touched: the route group's position as it was, no other group on the topic,
    # not a row written (the rules in force are still the ones loaded before).
    assert group_offsets(settings) == offsets_before
    assert list(offsets_before) == [f"{settings.topic_prefix}.route"]
    with connect(settings) as conn:
        assert rows(conn) == rows_before


def test_a_rules_file_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[queues.support]\nrules = [{ name = "x", subject = "(" }]\n', encoding="utf-8")
    mailroom = Path(sys.executable).with_name("mailroom")
    done = subprocess.run([str(mailroom), "rules", "preview", str(bad)],
                          capture_output=True, timeout=120)
    assert done.returncode != 0
    assert "not a valid regular expression" in done.stderr.decode()
