"""A mailbox's "process email from", to the second: IMAP judges each message by its
INTERNALDATE, POP3 by its headers' arrival; what arrived earlier is skipped — never fetched,
never published, never deleted — and each skip is a trace event with its reason. The
checkpoint passes a skip, so it is judged (and traced) once."""

from __future__ import annotations

import os
import poplib
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from ingest_helpers import add_mailbox, imap_login, ingestor, message, read_raw, seed_maildir
from pipeline_testing import read_events

from ingest import store
from ingest.model import AfterIngest, OwnerKind, Protocol
from mailroom.codec import Codec
from mailroom.console.ops.dlq import read_letters
from mailroom.console.stack import dovecot
from mailroom.records.trace import TraceEvent
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

CUTOFF = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)


def _user(settings: Settings) -> tuple[str, str]:
    name, password = "pf" + uuid.uuid4().hex[:10], "pw-" + uuid.uuid4().hex[:8]
    dovecot.add_user(settings, name, password)
    return name, password


def _skips(settings: Settings) -> list[TraceEvent]:
    events = read_events(settings)
    return [e for e in events if e.stage == "ingest" and e.event == "skipped"]


def _subjects(settings: Settings, n: int) -> list[str]:
    out = []
    for raw in read_raw(settings, n):
        assert raw.content is not None
        head = raw.content.split(b"\r\n\r\n")[0].decode()
        out += [line[9:] for line in head.splitlines() if line.startswith("Subject: ")]
    return sorted(out)


def test_imap_skips_mail_that_arrived_a_second_too_early(
    db_settings: Settings, db: psycopg.Connection, topics: Settings
) -> None:
    name, password = _user(db_settings)
    with imap_login(db_settings, name, password) as client:
        for i, when in ((1, CUTOFF - timedelta(seconds=1)), (2, CUTOFF),
                        (3, CUTOFF - timedelta(days=40)), (4, CUTOFF + timedelta(hours=5))):
            client.append("INBOX", message(i, subject="at"), msg_time=when)
    mb = add_mailbox(db, db_settings, name, password)
    assert mb.id is not None
    store.set_process_from(db, mb.id, CUTOFF)
    db.commit()

    assert ingestor(db_settings, db).run_once() == 2
    assert _subjects(db_settings, 2) == ["at 2", "at 4"]  # at the cut-off counts
    skips = _skips(db_settings)
    assert len(skips) == 2
    assert all("before the mailbox's 'process email from' 2026-05-04T10:00:00+00:00"
               in e.detail["reason"] and "INTERNALDATE" in e.detail["reason"] for e in skips)
    assert {e.detail["arrived"] for e in skips} == {
        (CUTOFF - timedelta(seconds=1)).isoformat(), (CUTOFF - timedelta(days=40)).isoformat()}
    # Judged once: the checkpoint passed them; the server still has them, unflagged.
    assert ingestor(db_settings, db).run_once() == 0
    assert len(_skips(db_settings)) == 2
    assert store.checkpoint(db, mb.id, "INBOX").last_uid == 4  # type: ignore[union-attr]
    with imap_login(db_settings, name, password) as client:
        client.select_folder("INBOX")
        flagged = client.search(["KEYWORD", mb.keyword])
        assert sorted(flagged) == [2, 4] and len(client.search(["ALL"])) == 4


def _with_received(i: int, when: datetime) -> bytes:
    stamp = when.strftime("%a, %d %b %Y %H:%M:%S +0000")
    return (f"Received: from mx.example.org by pop.example.com; {stamp}\r\n").encode() + message(
        i, subject="pop")


def test_pop3_judges_arrival_from_the_headers_and_never_deletes_a_skip(
    db_settings: Settings, db: psycopg.Connection, topics: Settings
) -> None:
    name, password = _user(db_settings)
    seed_maildir(db_settings, name, [
        _with_received(1, CUTOFF - timedelta(seconds=1)),
        _with_received(2, CUTOFF + timedelta(seconds=1)),
    ])
    mb = add_mailbox(db, db_settings, name, password, protocol=Protocol.POP3,
                     owner=OwnerKind.QUEUE, after=AfterIngest.DELETE)
    assert mb.id is not None
    store.set_process_from(db, mb.id, CUTOFF)
    db.commit()

    assert ingestor(db_settings, db).run_once() == 1
    assert _subjects(db_settings, 1) == ["pop 2"]
    [skip] = _skips(db_settings)
    assert "Received header" in skip.detail["reason"]
    assert skip.detail["arrived"] == (CUTOFF - timedelta(seconds=1)).isoformat()
    assert len(store.skipped_uidls(db, mb.id)) == 1
    # Judged once; the published one was deleted after ingest, the skipped one never is.
    assert ingestor(db_settings, db).run_once() == 0
    assert len(_skips(db_settings)) == 1
    pop = poplib.POP3("127.0.0.1", db_settings.pop3_port, timeout=30)
    try:
        pop.user(name)
        pop.pass_(password)
        assert pop.stat()[0] == 1
    finally:
        pop.quit()


def test_a_message_pop3_will_not_top_is_counted_and_dead_lettered_not_a_blocked_mailbox(
    db_settings: Settings, db: psycopg.Connection, topics: Settings
) -> None:
    """TOP reads a message's arrival; a message the server will not serve fails it every time.
    Like a failed RETR it counts against that message, which is dead-lettered after
    ``max_attempts`` and passed: the mail around it is judged and published."""
    name, password = _user(db_settings)
    seed_maildir(db_settings, name, [_with_received(i, CUTOFF + timedelta(seconds=i))
                                     for i in (1, 2, 3)])
    pop = poplib.POP3("127.0.0.1", db_settings.pop3_port, timeout=30)
    try:  # as any earlier client would: Dovecot caches the sizes (LIST then needs no file)
        pop.user(name)
        pop.pass_(password)
        pop.list()
        bad_uidl = pop.uidl(2).split()[2].decode()
    finally:
        pop.quit()
    maildir = dovecot.maildir(db_settings, name)
    files = sorted((p for sub in ("new", "cur") for p in (maildir / sub).iterdir()),
                   key=lambda p: p.name)
    files[1].chmod(0)  # TOP 2: -ERR
    mb = add_mailbox(db, db_settings, name, password, protocol=Protocol.POP3,
                     owner=OwnerKind.QUEUE)
    assert mb.id is not None
    store.set_process_from(db, mb.id, CUTOFF)
    db.commit()

    ing = ingestor(db_settings, db)
    published = 0
    for _ in range(db_settings.max_attempts + 2):
        ing.scheduler.all_due()
        published += ing.run_once()
        if published == 2:
            break
    assert published == 2
    assert _subjects(db_settings, 2) == ["pop 1", "pop 3"]
    codec = Codec.from_settings(db_settings)
    letters = [x.letter for x in read_letters(db_settings, codec) if x.letter is not None]
    [letter] = letters
    assert letter.reason_code == "unfetchable" and bad_uidl in letter.reason
    assert letter.source_key == f"{mb.id}/pop3/{bad_uidl}".encode()
    assert letter.attempts == db_settings.max_attempts


def test_a_suspect_fetched_alone_is_judged_by_its_own_arrival(
    db_settings: Settings, db: psycopg.Connection, topics: Settings
) -> None:
    """One unreadable message fails the FETCH of every message's size and date, so none has an
    arrival: each becomes a suspect, fetched alone later. The one that arrived before the
    cut-off is skipped then, by the date its own FETCH brings — not published."""
    name, password = _user(db_settings)
    seed_maildir(db_settings, name, [message(i, subject="suspect") for i in (1, 2, 3)])
    maildir = dovecot.maildir(db_settings, name)
    files = sorted((maildir / "new").iterdir(), key=lambda p: p.name)
    early, unreadable, late = files
    for path, when in ((early, CUTOFF - timedelta(hours=1)),
                       (unreadable, CUTOFF + timedelta(hours=1)),
                       (late, CUTOFF + timedelta(hours=2))):
        os.utime(path, (when.timestamp(), when.timestamp()))  # Maildir: INTERNALDATE is mtime
    os.chmod(unreadable, 0)
    mb = add_mailbox(db, db_settings, name, password)
    assert mb.id is not None
    store.set_process_from(db, mb.id, CUTOFF)
    db.commit()
    ing = ingestor(db_settings, db)
    ing.run_once()  # the FETCH of sizes and dates fails: a failed pass, every message suspect
    assert store.checkpoint(db, mb.id, "INBOX").last_uid == 0  # type: ignore[union-attr]
    # Readable again (Dovecot has moved it to cur/ meanwhile): the suspects are fetched alone.
    [moved] = [p for p in maildir.glob("*/*") if p.name.startswith(unreadable.name)]
    os.chmod(moved, 0o600)
    for _ in range(8):
        ing.scheduler.all_due()
        ing.run_once()
        if store.checkpoint(db, mb.id, "INBOX").last_uid == 3:  # type: ignore[union-attr]
            break
    assert sorted(r.uid or 0 for r in read_raw(db_settings, 2)) == [2, 3]
    skips = _skips(db_settings)
    assert len(skips) == 1 and "before the mailbox's 'process email from'" in \
        skips[0].detail["reason"]
