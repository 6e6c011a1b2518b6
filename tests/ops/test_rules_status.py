"""``rules status`` and doctor on PostgreSQL: when mail last arrived through each user's rule,
and a user whose forwards stopped while the others' kept arriving is called out."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pipeline_testing import own_schema

from ingest import store
from ingest.model import Mailbox, OwnerKind, Profile, Protocol, Tls
from mailroom.console import doctor
from mailroom.console.ops import rule_deploy, rule_status
from mailroom.db import connect
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(isolated_settings: Settings,
       unique_name: str) -> Iterator[tuple[Settings, psycopg.Connection]]:
    with own_schema(isolated_settings, f"rstat_{unique_name}") as settings, \
            connect(settings) as conn:
        yield settings, conn


def _setup(conn: psycopg.Connection) -> Mailbox:
    pid = store.add_profile(conn, Profile("p", Protocol.IMAP, "127.0.0.1", 143, tls=Tls.NONE))
    fid = store.add_mailbox(conn, Mailbox("fwd@corp.example", OwnerKind.FORWARD, pid, "fwd",
                                          b"x"))
    for name in ("alice", "bob", "carol"):
        store.add_mailbox(conn, Mailbox(f"{name}@corp.example", OwnerKind.USER, pid, name, b"",
                                        owner_id=f"user-{name}", via_mailbox_id=fid))
    conn.commit()
    return store.mailbox(conn, fid)


def _arrived(conn: psycopg.Connection, forward: Mailbox, forwarded_by: str, at: datetime) -> None:
    key = f"{forwarded_by}-{at.isoformat()}"
    row = conn.execute(
        "INSERT INTO email_activities (dedupe_key, content_hash, direction, copy_kind, "
        "copy_rank, received_at) VALUES (%s, 'h', 'incoming', 'rfc822', 1, %s) RETURNING id",
        (key, at)).fetchone()
    conn.execute("INSERT INTO activity_mailboxes (activity_id, mailbox_id, copy_kind, "
                 "forwarded_by) VALUES (%s, %s, 'rfc822', %s)", (row[0], str(forward.id),
                                                                  forwarded_by))
    conn.commit()


def test_a_user_whose_forwards_stopped_is_called_out(db: tuple[Settings, psycopg.Connection]
                                                    ) -> None:
    settings, conn = db
    forward = _setup(conn)
    _arrived(conn, forward, "user-alice", NOW - timedelta(days=9))
    _arrived(conn, forward, "user-alice", NOW)  # the newest counts
    _arrived(conn, forward, "user-bob", NOW - timedelta(days=5))
    # Another forward mailbox's mail with the same user id does not count here.
    _arrived(conn, dataclasses.replace(forward, id=0), "user-bob", NOW)

    arrivals = rule_status.last_arrivals(conn, forward)
    assert arrivals == {"user-alice": NOW, "user-bob": NOW - timedelta(days=5)}
    users = rule_deploy.forwarders(conn, forward)
    silent = {s.address: s for s in rule_status.silent(users, arrivals)}
    assert set(silent) == {"bob@corp.example", "carol@corp.example"}
    assert silent["carol@corp.example"].last is None
    assert "while other users' forwards kept arriving" in silent["bob@corp.example"].describe()

    warned = [f for f in doctor._check_forward_rules(conn)]  # noqa: SLF001
    assert [f.level for f in warned] == ["WARN", "WARN"]
    assert "bob@corp.example: last on" in warned[0].detail
    assert "rules status --forward-mailbox fwd@corp.example" in warned[0].fix

    env = dict(os.environ, MAILROOM_DATABASE_URL=settings.database_url)
    r = subprocess.run([sys.executable, "-m", "mailroom.cli", "rules", "status",
                        "--forward-mailbox", forward.address, "--no-server"],
                       cwd=REPO, env=env, text=True, capture_output=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    assert "2026-11-30 12:00:00 UTC" in lines["alice@corp.example"]
    assert "mail stopped" not in lines["alice@corp.example"]
    assert "2026-11-25 12:00:00 UTC" in lines["bob@corp.example"]
    assert "mail stopped while the others' continues" in lines["bob@corp.example"]
    assert "never" in lines["carol@corp.example"]

    # Mail through Bob's and Carol's rules again: nobody is behind any more.
    _arrived(conn, forward, "user-bob", NOW - timedelta(hours=1))
    _arrived(conn, forward, "user-carol", NOW - timedelta(days=1))
    assert list(doctor._check_forward_rules(conn)) == []  # noqa: SLF001


def test_a_disabled_user_or_a_lone_one_is_never_called_silent(
        db: tuple[Settings, psycopg.Connection]) -> None:
    _, conn = db
    forward = _setup(conn)
    _arrived(conn, forward, "user-alice", NOW)
    users = rule_deploy.forwarders(conn, forward)
    for m in users:
        if m.address != "alice@corp.example":
            store.set_enabled(conn, m.id or 0, False)
    conn.commit()
    users = rule_deploy.forwarders(conn, forward)
    assert rule_status.silent(users, rule_status.last_arrivals(conn, forward)) == []
