"""Passes run concurrently, at most the profile's ``max_connections`` sessions to its server."""

from __future__ import annotations

import logging
import re
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from ingest_helpers import message, read_raw, seed_maildir

from ingest import credentials, store
from ingest.model import Mailbox, OwnerKind, Profile, Protocol, Tls
from ingest.runner import Ingestor
from mailroom.console.stack import dovecot
from mailroom.db import connect
from mailroom.kafka import make_producer
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

MAILBOXES = 8
MESSAGES = 30
CAP = 2


def most_open_at_once(log_lines: list[str], users: set[str]) -> int:
    """The most sessions of ``users`` open at the same time, from Dovecot's log (one log
    process writes it: its line order is the order of logins and disconnects)."""
    login = re.compile(r"imap-login: Info: Login: user=<([^>]+)>.*session=<([^>]+)>")
    gone = re.compile(r"imap\(([^)]+)\)<\d+><([^>]+)>: Info: Disconnected")
    open_sessions: set[str] = set()
    most = 0
    for line in log_lines:
        if (m := login.search(line)) and m.group(1) in users:
            open_sessions.add(m.group(2))
            most = max(most, len(open_sessions))
        elif (m := gone.search(line)) and m.group(1) in users:
            open_sessions.discard(m.group(2))
    return most


def test_most_open_at_once_reads_dovecot_log() -> None:
    lines = ["imap-login: Info: Login: user=<a>, method=PLAIN, session=<1>",
             "imap-login: Info: Login: user=<b>, method=PLAIN, session=<2>",
             "imap(a)<10><1>: Info: Disconnected: Logged out",
             "imap-login: Info: Login: user=<c>, method=PLAIN, session=<3>",
             "imap-login: Info: Login: user=<z>, method=PLAIN, session=<4>"]
    assert most_open_at_once(lines, {"a", "b", "c"}) == 2


def test_passes_share_a_bounded_pool_of_sessions_per_server(
    db_settings: Settings, db: psycopg.Connection, topics: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    users = ["p" + uuid.uuid4().hex[:10] for _ in range(MAILBOXES)]
    for u in users:
        dovecot.add_user(db_settings, u, "pw-" + u)
        seed_maildir(db_settings, u, [message(i, subject=u) for i in range(MESSAGES)])
    time.sleep(1.1)  # Dovecot notices new passwd files by mtime (one-second resolution)
    pid = store.add_profile(db, Profile("pooled", Protocol.IMAP, "127.0.0.1",
                                        db_settings.imap_port, tls=Tls.NONE,
                                        max_connections=CAP, poll_interval_s=1))
    for u in users:
        store.add_mailbox(db, Mailbox(f"{u}@example.com", OwnerKind.USER, pid, u,
                                      credentials.encrypt(db_settings, "pw-" + u)))
    db.commit()
    log = dovecot.log_file(db_settings)
    log_from = log.stat().st_size

    def no_blobs(data: bytes) -> str:
        raise AssertionError("no claim check expected in this test")

    # Small batches: each pass takes a while, so passes overlap.
    settings = db_settings.replace(ingest_batch_size=5)
    ing = Ingestor(settings, db, make_producer(settings), no_blobs,
                   database=lambda: connect(settings))
    with caplog.at_level(logging.INFO, logger="ingest.runner"):
        assert ing.run_once() == MAILBOXES * MESSAGES
    ing.stop.set()
    ing.scheduler.close()

    raws = read_raw(db_settings, MAILBOXES * MESSAGES)
    assert len({r.identity for r in raws}) == MAILBOXES * MESSAGES
    # Passes ran in the profile's workers, never more than its max_connections at once.
    threads = {r.threadName for r in caplog.records if "published=" in r.getMessage()}
    assert threads and threads <= {f"ingest-pooled-{n}" for n in range(1, CAP + 1)}, threads
    with Path(log).open(errors="replace") as f:
        f.seek(log_from)
        lines = f.read().splitlines()
    assert 1 <= most_open_at_once(lines, set(users)) <= CAP
    for u in users:
        cp = store.checkpoint(db, store.mailbox(db, f"{u}@example.com").id or 0, "INBOX")
        assert cp is not None and cp.last_uid == MESSAGES
