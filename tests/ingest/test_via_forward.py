"""A mailbox whose incoming method is "via forward mailbox X" is never logged in to: its mail
arrives through X. Proven on Dovecot's log: the forward mailbox's user logs in, the forwarding
users never do — not even one that has working credentials stored."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import psycopg
import pytest
from ingest_helpers import REPO, _env, add_mailbox, ingestor, message, read_raw, seed_maildir

from ingest import credentials, store
from ingest.model import AfterIngest, Mailbox, OwnerKind
from mailroom.console import doctor
from mailroom.console.stack import dovecot
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def _user(settings: Settings) -> tuple[str, str]:
    name, password = "v" + uuid.uuid4().hex[:10], "pw-" + uuid.uuid4().hex[:8]
    dovecot.add_user(settings, name, password)
    return name, password


def _logins(settings: Settings, since: int) -> set[str]:
    text = dovecot.log_file(settings).read_bytes()[since:].decode(errors="replace")
    return set(re.findall(r"(?:imap|pop3)-login: Info: Login: user=<([^>]+)>", text))


def test_mailboxes_via_a_forward_mailbox_are_never_polled(
    db_settings: Settings, db: psycopg.Connection, topics: Settings
) -> None:
    forward, alice, bob = (_user(db_settings) for _ in range(3))
    # Straight into the Maildirs: every login in the log from here on is ingest's.
    log_from = dovecot.log_file(db_settings).stat().st_size
    seed_maildir(db_settings, forward[0], [message(i, subject="forwarded") for i in range(2)])
    seed_maildir(db_settings, alice[0], [message(9, subject="alice's own")])
    fwd = add_mailbox(db, db_settings, *forward, owner=OwnerKind.FORWARD,
                      after=AfterIngest.DELETE)
    assert fwd.id is not None
    # Alice has working credentials stored (the case that used to be polled directly) ...
    store.add_mailbox(db, Mailbox(f"{alice[0]}@example.com", OwnerKind.USER, fwd.profile_id,
                                  alice[0], credentials.encrypt(db_settings, alice[1]),
                                  via_mailbox_id=fwd.id))
    db.commit()
    # ... Bob has none: `mailbox add --via` needs neither a profile nor a password.
    r = subprocess.run(
        [sys.executable, "-m", "mailroom.cli", "mailbox", "add", f"{bob[0]}@example.com",
         "--via", fwd.address, "--username", bob[0]],
        cwd=REPO, input="", text=True, capture_output=True, env=_env(db_settings), timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert store.mailbox(db, f"{bob[0]}@example.com").secret == b""
    assert [m.address for m in store.mailboxes(db, runnable_only=True)] == [fwd.address]

    assert ingestor(db_settings, db).run_once() == 2  # the forward mailbox's two messages
    assert {r.mailbox_address for r in read_raw(db_settings, 2)} == {fwd.address}

    # Doctor reports them OK without logging in.
    findings = [f for f in doctor._check_mailboxes(db_settings, db)
                if alice[0] in f.detail or bob[0] in f.detail]
    assert [f.level for f in findings] == ["OK", "OK"]
    assert all(f"via forward mailbox {fwd.address}" in f.detail for f in findings)

    logins = _logins(db_settings, log_from)
    assert forward[0] in logins
    assert alice[0] not in logins and bob[0] not in logins, logins


def test_via_must_name_a_forward_mailbox(db_settings: Settings, db: psycopg.Connection) -> None:
    from mailroom.errors import ConfigError

    user = add_mailbox(db, db_settings, "someone", "pw")
    assert user.id is not None
    with pytest.raises(ConfigError, match="not a forward mailbox"):
        store.add_mailbox(db, Mailbox("x@example.com", OwnerKind.USER, user.profile_id, "x",
                                      b"", via_mailbox_id=user.id))
    with pytest.raises(ConfigError, match="credentials are required"):
        store.add_mailbox(db, Mailbox("y@example.com", OwnerKind.USER, user.profile_id, "y",
                                      b""))
