"""Approval of a mailbox's address: only an approved mailbox's mail is processed; who decided
and when is recorded; an unapproved mailbox's mail waits on its server (not fetched, not lost)
and doctor says why. The administrator adding a mailbox approves it unless told ``--pending``."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from ingest_helpers import ingestor, message, read_raw, seed_maildir

from ingest import store
from mailroom.cli import build_parser
from mailroom.console import doctor
from mailroom.console.stack import dovecot
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

PW_ENV = "MAILROOM_DEMO_MAILBOX_PASSWORD"


def _cli(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return int(args.func(settings, args) or 0)


def _user(settings: Settings) -> tuple[str, str]:
    name, password = "ap" + uuid.uuid4().hex[:10], "pw-" + uuid.uuid4().hex[:8]
    dovecot.add_user(settings, name, password)
    return name, password


def _findings(settings: Settings, db: psycopg.Connection, address: str) -> list[doctor.Finding]:
    return [f for f in doctor._check_mailboxes(settings, db) if address in f.detail]


def test_added_mailboxes_are_approved_by_the_admin_unless_pending(
    db_settings: Settings, db: psycopg.Connection, topics: Settings,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    (now_name, now_pw), (later_name, later_pw) = _user(db_settings), _user(db_settings)
    seed_maildir(db_settings, now_name, [message(1, subject="approved at once")])
    seed_maildir(db_settings, later_name, [message(2, subject="waits for approval")])
    assert _cli(db_settings, "profile", "add", "p", "--host", "127.0.0.1", "--port",
                str(db_settings.imap_port), "--tls", "none") == 0
    monkeypatch.setenv(PW_ENV, now_pw)
    assert _cli(db_settings, "mailbox", "add", f"{now_name}@example.com", "--profile", "p",
                "--username", now_name, "--password-env", PW_ENV, "--by", "Ada Admin") == 0
    monkeypatch.setenv(PW_ENV, later_pw)
    assert _cli(db_settings, "mailbox", "add", f"{later_name}@example.com", "--profile", "p",
                "--username", later_name, "--password-env", PW_ENV, "--pending") == 0
    now, later = (store.mailbox(db, f"{n}@example.com") for n in (now_name, later_name))
    assert (now.approval, now.approval_by) == ("approved", "Ada Admin")
    assert now.approval_at is not None
    assert (later.approval, later.approval_by, later.approval_at) == ("pending", "", None)

    # Only the approved mailbox is polled: the pending one's mail stays on its server.
    assert ingestor(db_settings, db).run_once() == 1
    assert [r.mailbox_address for r in read_raw(db_settings, 1)] == [now.address]
    assert store.checkpoint(db, int(later.id or 0), "INBOX") is None  # never logged in to
    [finding] = _findings(db_settings, db, later.address)
    assert finding.level == "WARN" and finding.component == "approval"
    assert "pending approval" in finding.detail and "waits on its server" in finding.detail
    assert f"mailroom mailbox approve {later.address}" in finding.fix
    capsys.readouterr()
    assert _cli(db_settings, "mailbox", "show", later.address) == 0
    assert "approval: pending" in capsys.readouterr().out

    # Approved: who and when recorded; the mail that waited is fetched next round.
    assert _cli(db_settings, "mailbox", "approve", later.address, "--by", "Bo Boss") == 0
    approved = store.mailbox(db, later.address)
    assert (approved.approval, approved.approval_by) == ("approved", "Bo Boss")
    assert approved.approval_at is not None
    assert ingestor(db_settings, db).run_once() == 1
    assert sorted(r.mailbox_address for r in read_raw(db_settings, 2)) == sorted(
        [now.address, later.address])
    assert [f.component for f in _findings(db_settings, db, later.address)] == ["mailbox"]


def test_a_rejected_mailbox_is_not_polled_and_doctor_says_by_whom(
    db_settings: Settings, db: psycopg.Connection, topics: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, pw = _user(db_settings)
    seed_maildir(db_settings, name, [message(1, subject="never processed")])
    assert _cli(db_settings, "profile", "add", "p", "--host", "127.0.0.1", "--port",
                str(db_settings.imap_port), "--tls", "none") == 0
    monkeypatch.setenv(PW_ENV, pw)
    assert _cli(db_settings, "mailbox", "add", f"{name}@example.com", "--profile", "p",
                "--username", name, "--password-env", PW_ENV) == 0
    assert _cli(db_settings, "mailbox", "reject", f"{name}@example.com", "--by", "Cy") == 0
    rejected = store.mailbox(db, f"{name}@example.com")
    assert (rejected.approval, rejected.approval_by) == ("rejected", "Cy")
    assert ingestor(db_settings, db).run_once() == 0
    [finding] = _findings(db_settings, db, rejected.address)
    assert "rejected by Cy" in finding.detail
