"""``mailroom profile``/``mailbox`` commands and ``mailbox test`` against the real Dovecot."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from ingest_helpers import REPO, _env, add_mailbox, append, message, read_mailboxes

from ingest import probe, store
from ingest.model import Folder
from mailroom.console.stack import dovecot
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def _cli(settings: Settings, *args: str, env: dict[str, str] | None = None,
         stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailroom.cli", *args], cwd=REPO, input=stdin, text=True,
        capture_output=True, env={**_env(settings), **(env or {})}, timeout=60,
    )


def test_cli_add_test_show_never_prints_the_password(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    append(db_settings, user, password, [message(1), message(2)])
    r = _cli(db_settings, "profile", "add", "local", "--host", "127.0.0.1", "--tls", "none",
             "--port", str(db_settings.imap_port))
    assert r.returncode == 0, r.stderr
    r = _cli(db_settings, "mailbox", "add", f"{user}@example.com", "--profile", "local",
             "--username", user, "--folder", "INBOX", "--folder", "Outbox:outgoing",
             "--password-env", "PW", env={"PW": password})
    assert r.returncode == 0, r.stderr
    r = _cli(db_settings, "mailbox", "test", f"{user}@example.com")
    assert r.returncode == 1 and "folder missing: 'Outbox'" in r.stdout  # not created yet
    append(db_settings, user, password, [], folder="Outbox")
    r = _cli(db_settings, "mailbox", "test", f"{user}@example.com")
    assert r.returncode == 0 and "Success" in r.stdout and "INBOX: 2 messages" in r.stdout
    shown = _cli(db_settings, "mailbox", "show", f"{user}@example.com").stdout
    assert "last test: Success" in shown and "Outbox (outgoing)" in shown
    for out in (shown, _cli(db_settings, "mailbox", "list").stdout, r.stdout, r.stderr):
        assert password not in out
    assert _cli(db_settings, "mailbox", "disable", f"{user}@example.com").returncode == 0
    assert not store.mailbox(db, f"{user}@example.com").enabled
    # Every change is on the mailboxes topic, keyed by id, without credentials.
    mid = str(store.mailbox(db, f"{user}@example.com").id)
    record = read_mailboxes(db_settings)[mid]
    assert record.address == f"{user}@example.com" and not record.enabled
    assert record.folders == ("INBOX",) and record.outgoing_folders == ("Outbox",)
    assert password.encode() not in _raw_topic_bytes(db_settings)
    r = _cli(db_settings, "mailbox", "publish")
    assert r.returncode == 0 and "1 mailbox(es) published" in r.stdout, r.stderr


def _raw_topic_bytes(settings: Settings) -> bytes:
    from kafka import TopicPartition

    from mailroom.kafka import make_consumer

    consumer = make_consumer(settings, group_id="reader-bytes")
    topic = settings.topic("mailboxes")
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        out = b""
        for _ in range(4):
            for records in consumer.poll(timeout_ms=500).values():
                out += b"".join((r.key or b"") + (r.value or b"") for r in records)
        return out
    finally:
        consumer.close()


def test_probe_names_the_real_cause(db_settings: Settings, db: psycopg.Connection,
                                    mail_user: tuple[str, str]) -> None:
    user, password = mail_user
    append(db_settings, user, password, [message(1)])
    wrong = add_mailbox(db, db_settings, user, "nope")
    profile = store.profile(db, wrong.profile_id)
    result = probe.test(db_settings, profile, wrong)
    assert not result.ok and "authentication refused" in result.detail
    unreachable = profile.__class__(**{**profile.__dict__, "port": 1})
    assert "host unreachable" in probe.test(db_settings, unreachable, wrong).detail
    assert probe.reachable(unreachable) is not None and probe.reachable(profile) is None


def test_wrong_password_is_tried_once_in_dovecots_log(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    from ingest_helpers import ingestor

    user, password = mail_user
    append(db_settings, user, password, [message(1)])  # makes sure Dovecot knows the user
    add_mailbox(db, db_settings, user, "wrong", folders=(Folder(),))
    ing = ingestor(db_settings, db)
    for _ in range(3):
        ing.scheduler.all_due()
        ing.run_once()
    log = dovecot.log_file(db_settings).read_text(errors="replace")
    failed = [line for line in log.splitlines() if user in line and "auth" in line.lower()
              and ("mismatch" in line.lower() or "failed" in line.lower())]
    assert 1 <= len(failed) <= 2, failed  # one login attempt (its auth and imap-login lines)
