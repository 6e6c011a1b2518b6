"""``mailroom mailbox import FILE.csv``: many mailboxes in one transaction, one publish."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from ingest_helpers import REPO, _env, read_mailboxes

from ingest import credentials, store
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def _cli(settings: Settings, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailroom.cli", *args], cwd=REPO, text=True,
        capture_output=True, env={**_env(settings), **(env or {})}, timeout=60,
    )


def test_import_adds_every_row_and_publishes_them(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, tmp_path: Path
) -> None:
    assert _cli(db_settings, "profile", "add", "local", "--host", "127.0.0.1", "--tls", "none",
                "--port", str(db_settings.imap_port)).returncode == 0
    csv = tmp_path / "mailboxes.csv"
    csv.write_text("address,username,owner,owner_id,folders,password\n"
                   "a@example.com,alice,user,u-a,INBOX;Sent:outgoing,\n"
                   "b@example.com,,queue,,,own-secret\n"
                   "c@example.com,carol,,,,\n")
    r = _cli(db_settings, "mailbox", "import", str(csv), "--profile", "local",
             "--password-env", "PW", env={"PW": "shared-secret"})
    assert r.returncode == 0 and "3 mailbox(es) imported" in r.stdout, r.stderr
    a, b, c = (store.mailbox(db, f"{x}@example.com") for x in "abc")
    assert (a.username, a.owner_id, [f.name for f in a.folders]) == ("alice", "u-a",
                                                                      ["INBOX", "Sent"])
    assert b.username == "b@example.com" and b.owner_kind.value == "queue"
    assert credentials.decrypt(db_settings, b.secret) == "own-secret"
    assert credentials.decrypt(db_settings, c.secret) == "shared-secret"
    published = read_mailboxes(db_settings)
    assert {published[str(m.id)].address for m in (a, b, c)} == {
        "a@example.com", "b@example.com", "c@example.com"}


def test_a_bad_row_imports_nothing(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, tmp_path: Path
) -> None:
    assert _cli(db_settings, "profile", "add", "local", "--host", "127.0.0.1", "--tls", "none",
                "--port", str(db_settings.imap_port)).returncode == 0
    csv = tmp_path / "mailboxes.csv"
    csv.write_text("address,password\nd@example.com,x\nd@example.com,y\n")
    r = _cli(db_settings, "mailbox", "import", str(csv), "--profile", "local")
    assert r.returncode != 0 and "appears twice" in r.stderr
    csv.write_text("address\ne@example.com\n")  # no password anywhere
    r = _cli(db_settings, "mailbox", "import", str(csv), "--profile", "local")
    assert r.returncode != 0 and "no password" in r.stderr
    assert store.mailboxes(db) == []
