"""``mailroom mailbox backfill``: a mailbox's existing mail on the real Dovecot, into the real raw
topic — every monitored folder, since a date, what persist stores skipped, the server's flags
and the live checkpoint untouched, resumable after a kill."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
from imapclient import IMAPClient
from ingest_helpers import _env, add_mailbox, append, imap_login, message, read_raw
from pipeline_testing import own_topics

from ingest import backfill, store
from ingest.model import Folder, Mailbox
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.kafka import make_producer
from mailroom.settings import Settings
from persist.activities import stored_message_ids

REPO = Path(__file__).resolve().parents[2]
SINCE = date(2026, 1, 1)
OLD = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NEW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FOLDERS = (Folder("INBOX"), Folder("Archive"))


# --- pure parts ------------------------------------------------------------------------------


def test_message_ids_are_compared_as_persist_stores_them() -> None:
    assert backfill.normalised_message_id(
        b"Message-ID: < abc.1@Mail.Example.ORG >\r\n\r\n") == "abc.1@mail.example.org"
    assert backfill.normalised_message_id(b"\r\n") is None


def test_the_progress_line_says_messages_bytes_rate_and_eta() -> None:
    p = backfill.Progress(total=1000, total_bytes=10 * 1024 * 1024, started=0.0, done=250,
                          published=240, skipped=10, bytes=2 * 1024 * 1024)
    line = p.line(now=10.0)
    assert line.startswith("250/1,000 messages, 2.0 MB/10.0 MB (20 %), 25 msg/s, 204.8 KB/s")
    assert "ETA 0:00:40" in line  # 8 MB left at 0.2 MB/s
    assert line.endswith("240 published, 10 already stored")
    assert "ETA --:--" in backfill.Progress(5, 100, 0.0).line(now=1.0)


# --- on the real stack -------------------------------------------------------------------------


def flags(settings: Settings, user: str, password: str) -> dict[tuple[str, int], tuple]:
    with imap_login(settings, user, password) as client:
        out = {}
        for folder in ("INBOX", "Archive"):
            client.select_folder(folder, readonly=True)
            for uid, data in client.fetch(client.search(["ALL"]), ["FLAGS"]).items():
                out[folder, uid] = tuple(sorted(data[b"FLAGS"]))
        return out


def seed(settings: Settings, user: str, password: str) -> dict[str, list[bytes]]:
    """INBOX: 2 old, 6 new; Archive: 1 old, 3 new (dates as the server received them)."""
    mail = {"inbox_old": [message(i, "old") for i in range(2)],
            "inbox_new": [message(i, "new") for i in range(6)],
            "archive_old": [message(i, "archived old") for i in range(1)],
            "archive_new": [message(i, "archived") for i in range(3)]}
    with imap_login(settings, user, password) as client:
        client.create_folder("Archive")
        for key, when in (("inbox_old", OLD), ("inbox_new", NEW)):
            for m in mail[key]:
                client.append("INBOX", m, msg_time=when)
        for key, when in (("archive_old", OLD), ("archive_new", NEW)):
            for m in mail[key]:
                client.append("Archive", m, msg_time=when)
    return mail


def message_id(data: bytes) -> str:
    header = next(line for line in data.split(b"\r\n") if line.startswith(b"Message-ID:"))
    found = backfill.normalised_message_id(header)
    assert found is not None
    return found


def store_activity(db: psycopg.Connection, data: bytes) -> None:
    """As if persist had stored this email already."""
    mid = message_id(data)
    db.execute("INSERT INTO email_activities (dedupe_key, content_hash, message_id, direction, "
               "copy_kind, copy_rank) VALUES (%s, 'h', %s, 'incoming', 'direct', 0)", (mid, mid))
    db.commit()


def live_checkpoint(db: psycopg.Connection, box: Mailbox, folder: str, uidvalidity: int,
                    last_uid: int) -> None:
    """Live ingest's checkpoint, as if it had passed ``last_uid`` of the folder."""
    db.execute("INSERT INTO ingest_checkpoints (mailbox_id, folder, uidvalidity, last_uid) "
               "VALUES (%s, %s, %s, %s)", (box.id, folder, uidvalidity, last_uid))
    db.commit()


def uidvalidity(client: IMAPClient, folder: str) -> int:
    return int(client.select_folder(folder, readonly=True)[b"UIDVALIDITY"])


@pytest.fixture
def backfill_topics(db_settings: Settings) -> Iterator[None]:
    """The raw and trace topics a backfill writes, deleted afterwards."""
    with own_topics(db_settings, {"raw": 3, "trace": 3}):
        yield


@pytest.fixture
def seeded(db_settings: Settings, backfill_topics: None, db: psycopg.Connection,
           mail_user: tuple[str, str]) -> tuple[Mailbox, dict[str, list[bytes]], int]:
    """The mailbox (INBOX and Archive monitored); live ingest passed INBOX up to UID 7 (the
    old mail and the first five new), one of those is stored already; Archive never polled."""
    user, password = mail_user
    mail = seed(db_settings, user, password)
    box = add_mailbox(db, db_settings, user, password, folders=FOLDERS)
    with imap_login(db_settings, user, password) as client:
        inbox_validity = uidvalidity(client, "INBOX")
    live_checkpoint(db, box, "INBOX", inbox_validity, 7)
    store_activity(db, mail["inbox_new"][0])
    return box, mail, inbox_validity


def run(settings: Settings, db: psycopg.Connection, box: Mailbox,
        out: io.StringIO | None = None) -> backfill.Progress:
    producer = make_producer(settings)
    try:
        return backfill.backfill(
            settings, db, box, store.profile(db, box.profile_id), SINCE,
            codec=Codec.from_settings(settings), producer=producer,
            put_blob=BlobStore(db).put, stored=lambda ids: stored_message_ids(db, ids),
            out=out or io.StringIO(), batch=2)
    finally:
        producer.close()


@pytest.mark.integration
def test_backfill_brings_in_what_live_ingest_passed_and_nothing_else(
    db_settings: Settings, db: psycopg.Connection, mail_user: tuple[str, str],
    seeded: tuple[Mailbox, dict[str, list[bytes]], int],
) -> None:
    box, mail, inbox_validity = seeded
    user, password = mail_user
    before = flags(db_settings, user, password)
    out = io.StringIO()

    progress = run(db_settings, db, box, out)

    # INBOX: new mail up to the live checkpoint (UIDs 3-7), less the one stored; Archive: its
    # new mail (no live checkpoint: up to its highest UID). Old mail stays out.
    expected = {message_id(m) for m in mail["inbox_new"][1:5] + mail["archive_new"]}
    raws = read_raw(db_settings, len(expected))
    assert Counter(message_id(r.content or b"") for r in raws) == Counter(expected)
    inbox = [r for r in raws if r.folder == "INBOX"]
    assert {r.uid for r in inbox} == {4, 5, 6, 7}
    assert all(r.uidvalidity == inbox_validity and r.mailbox_id == str(box.id) for r in inbox)
    assert (progress.published, progress.skipped, progress.done) == (7, 1, 8)

    assert flags(db_settings, user, password) == before  # no \Seen, no keyword: untouched
    live = store.checkpoint(db, box.id or 0, "INBOX")
    assert live is not None and live.last_uid == 7  # the live checkpoint did not move
    assert store.checkpoint(db, box.id or 0, "Archive") is None
    text = out.getvalue()
    assert "8/8 messages" in text and "ETA" in text and "1 already stored" in text

    # Done is done: a second run finds nothing left and publishes nothing.
    again = run(db_settings, db, box)
    assert (again.total, again.published) == (0, 0)
    assert len(read_raw(db_settings, len(expected), timeout_s=5)) == len(expected)


@pytest.mark.integration
def test_a_killed_backfill_resumes_after_its_last_acknowledged_batch(
    db_settings: Settings, db: psycopg.Connection, mail_user: tuple[str, str],
    seeded: tuple[Mailbox, dict[str, list[bytes]], int],
) -> None:
    box, mail, _ = seeded
    command = [sys.executable, "-m", "mailroom.cli", "mailbox", "backfill", box.address,
               "--since", SINCE.isoformat(), "--batch", "2"]
    # Killed (SIGKILL) once the broker has the second batch, before its checkpoint moves.
    crashed = subprocess.run(command, cwd=REPO, capture_output=True, timeout=120,
                             env=_env(db_settings, "backfill:after_publish@2"))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-2000:]
    row = db.execute("SELECT folder, last_uid, finished_at FROM ingest_backfills "
                     "WHERE mailbox_id = %s AND folder = 'INBOX'", (box.id,)).fetchone()
    db.commit()
    # Batch one (UID 3, already stored, and 4) only.
    assert row is not None and row[1] == 4 and row[2] is None

    resumed = subprocess.run(command, cwd=REPO, env=_env(db_settings), capture_output=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert "already stored" in resumed.stdout.decode()
    expected = [message_id(m) for m in mail["inbox_new"][1:5] + mail["archive_new"]]
    raws = read_raw(db_settings, len(expected) + 2)
    counts = Counter(message_id(r.content or b"") for r in raws)
    assert set(counts) == set(expected)  # nothing lost...
    repeated = sorted(m for m, n in counts.items() if n > 1)
    # ...and only the interrupted batch (UIDs 5, 6) sent twice.
    assert repeated == sorted(message_id(m) for m in mail["inbox_new"][2:4])
    assert all(r[0] is not None for r in db.execute(
        "SELECT finished_at FROM ingest_backfills WHERE mailbox_id = %s", (box.id,)))


@pytest.mark.integration
def test_only_imap_mailboxes_polled_themselves_can_be_backfilled(
    db_settings: Settings, db: psycopg.Connection, mail_user: tuple[str, str],
) -> None:
    from ingest.model import Protocol
    from mailroom.errors import ConfigError

    user, password = mail_user
    append(db_settings, user, password, [message(1)])
    box = add_mailbox(db, db_settings, user, password, protocol=Protocol.POP3)
    with pytest.raises(ConfigError, match="needs IMAP"):
        run(db_settings, db, box)
