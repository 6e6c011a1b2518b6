"""No message can stop ingest: long lines are fetched, a message the server will not serve is
dead-lettered and passed, and later mail still arrives. Real Dovecot, Kafka and PostgreSQL."""

from __future__ import annotations

import os
import poplib
import signal
import time
from email.utils import make_msgid
from pathlib import Path

import psycopg
import pytest
from ingest_helpers import (
    add_mailbox,
    imap_login,
    ingestor,
    message,
    publish_mailboxes,
    read_raw,
    run_ingest,
    seed_maildir,
)

from ingest import connect, store
from ingest.model import AfterIngest, Mailbox, OwnerKind, Protocol
from ingest.runner import Ingestor
from mailroom.codec import Codec
from mailroom.console.ops.dlq import read_letters, retry, summary
from mailroom.console.stack import dovecot
from mailroom.records import DeadLetter
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

FAST_RETRY = {"MAILROOM_INGEST_BACKOFF_BASE_MS": "100", "MAILROOM_INGEST_BACKOFF_MAX_MS": "500"}


def long_line_message(length: int = 100_000) -> bytes:
    """A message whose body is one line of ``length`` bytes (RFC 5322 says 998; mail ignores it)."""
    return (
        b"From: wide@example.org\r\nTo: someone@example.com\r\nSubject: one long line\r\n"
        + f"Message-ID: {make_msgid(domain='example.org')}\r\n".encode()
        + b"Content-Type: text/html\r\n\r\n<p>" + b"A" * length + b"</p>\r\n"
    )


def _maildir_files(settings: Settings, user: str) -> list[Path]:
    """The user's message files in delivery order (names start with the delivery time)."""
    maildir = dovecot.maildir(settings, user)
    files = [p for sub in ("new", "cur") for p in (maildir / sub).iterdir()]
    return sorted(files, key=lambda p: p.name)


def _passes(ing: Ingestor, until: object, max_passes: int = 12) -> None:
    """Run passes (skipping the backoff wait) until ``until()`` holds; none may raise."""
    for _ in range(max_passes):
        ing.scheduler.all_due()
        ing.run_once()
        if until():  # type: ignore[operator]
            return
    raise AssertionError(f"not done after {max_passes} passes")


def _letters(settings: Settings) -> list[DeadLetter]:
    return [x.letter for x in read_letters(settings, Codec.from_settings(settings))
            if x.letter is not None]


def _pop3_numbers(settings: Settings, user: str, password: str) -> list[bytes]:
    """UIDL lines on the server, and primes Dovecot's size cache as any earlier client would."""
    conn = poplib.POP3("127.0.0.1", settings.pop3_port, timeout=30)
    conn.user(user)
    conn.pass_(password)
    conn.list()
    lines = conn.uidl()[1]
    conn.quit()
    return lines


def _assert_unfetchable(letter: DeadLetter, mailbox: Mailbox, key: str, settings: Settings) -> None:
    assert letter.stage == "ingest" and letter.reason_code == "unfetchable"
    assert letter.source_key == key.encode() and letter.source_topic == settings.topic("raw")
    assert letter.payload is None and letter.blob_ref is None  # nothing was obtained
    assert letter.attempts == settings.max_attempts
    assert mailbox.address in letter.reason


@pytest.mark.parametrize("protocol", [Protocol.POP3, Protocol.IMAP])
def test_a_message_with_a_100kb_line_is_ingested(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str],
    protocol: Protocol,
) -> None:
    user, password = mail_user
    msgs = [message(0), long_line_message(), message(2)]
    seed_maildir(db_settings, user, msgs)
    add_mailbox(db, db_settings, user, password, protocol=protocol)
    ing = ingestor(db_settings, db)
    assert ing.run_once() == 3
    raws = read_raw(db_settings, 3)
    assert sorted(r.content or b"" for r in raws) == sorted(msgs)  # byte-identical
    # and the next message still arrives
    seed_maildir(db_settings, user, [message(3)])
    ing.scheduler.all_due()
    assert ing.run_once() == 1


def test_a_pop3_line_over_the_connection_limit_is_dead_lettered_not_a_dead_process(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The limit is the batch budget (64 MB); lowered here so a 100 KB line is over it."""
    monkeypatch.setattr(connect.POP3, "max_line", 50_000)
    user, password = mail_user
    msgs = [message(0), long_line_message(), message(2)]
    seed_maildir(db_settings, user, msgs)
    mb = add_mailbox(db, db_settings, user, password, protocol=Protocol.POP3)
    ing = ingestor(db_settings, db)
    _passes(ing, lambda: len(_letters(db_settings)) == 1)
    [letter] = _letters(db_settings)
    assert letter.reason_code == "unfetchable" and "line too long" in letter.reason
    assert mb.address in letter.reason
    ing.scheduler.all_due()
    ing.run_once()
    assert sorted(r.content or b"" for r in read_raw(db_settings, 2)) == sorted(
        [msgs[0], msgs[2]])
    assert poplib._MAXLINE == 2048  # the module global is never touched


def test_imap_message_the_server_cannot_read_is_dead_lettered_and_passed(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str],
) -> None:
    user, password = mail_user
    msgs = [message(i) for i in range(4)]
    seed_maildir(db_settings, user, msgs)
    os.chmod(_maildir_files(db_settings, user)[2], 0)  # Dovecot answers BYE and hangs up
    mb = add_mailbox(db, db_settings, user, password)
    ing = ingestor(db_settings, db)
    _passes(ing, lambda: len(_letters(db_settings)) == 1)
    letter = _letters(db_settings)[0]
    with imap_login(db_settings, user, password) as client:
        uidvalidity = int(client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"])
        _assert_unfetchable(letter, mb, f"{mb.id}/INBOX/{uidvalidity}/3", db_settings)
        assert "UID 3" in letter.reason
    # later mail arrives, the passed message is not fetched again
    later = message(4)
    seed_maildir(db_settings, user, [later])
    _passes(ing, lambda: store.checkpoint(db, mb.id or 0, "INBOX") == store.Checkpoint(
        uidvalidity, 5))
    raws = read_raw(db_settings, 4)
    assert sorted(r.content or b"" for r in raws) == sorted(msgs[:2] + msgs[3:] + [later])
    assert sorted(r.uid or 0 for r in raws) == [1, 2, 4, 5]
    assert len(_letters(db_settings)) == 1
    # operators see why, and a retry has nothing to send (the message is still on the server)
    codec = Codec.from_settings(db_settings)
    assert "nothing was obtained" in summary(codec, letter)["payload"]
    assert retry(db_settings, codec, read_letters(db_settings, codec)) == 0
    with imap_login(db_settings, user, password) as client:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags([1, 3])
    assert mb.keyword.encode() in flags[1]
    assert mb.keyword.encode() not in flags[3]  # never marked: it never reached the topic
    status = db.execute("SELECT status FROM ingest_mailboxes WHERE id = %s", (mb.id,)).fetchone()
    assert status == ("ok",)


def test_pop3_message_the_server_cannot_read_is_dead_lettered_never_deleted(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str],
) -> None:
    user, password = mail_user
    msgs = [message(i) for i in range(4)]
    seed_maildir(db_settings, user, msgs)
    uidls = _pop3_numbers(db_settings, user, password)
    os.chmod(_maildir_files(db_settings, user)[2], 0)  # RETR 3: "-ERR Message 3 expunged."
    mb = add_mailbox(db, db_settings, user, password, protocol=Protocol.POP3,
                     owner=OwnerKind.QUEUE, after=AfterIngest.DELETE)
    ing = ingestor(db_settings, db)
    _passes(ing, lambda: len(_pop3_numbers(db_settings, user, password)) == 1)
    bad_uidl = uidls[2].split()[1].decode()
    [letter] = _letters(db_settings)
    _assert_unfetchable(letter, mb, f"{mb.id}/pop3/{bad_uidl}", db_settings)
    assert bad_uidl in letter.reason
    raws = read_raw(db_settings, 3)
    assert sorted(r.content or b"" for r in raws) == sorted(msgs[:2] + msgs[3:])
    # later mail arrives and is deleted; the dead-lettered one stays, never fetched again
    later = message(4)
    seed_maildir(db_settings, user, [later])
    _passes(ing, lambda: len(_pop3_numbers(db_settings, user, password)) == 1)
    assert sorted(r.content or b"" for r in read_raw(db_settings, 4)) == sorted(
        msgs[:2] + msgs[3:] + [later])
    assert [line.split()[1].decode() for line in _pop3_numbers(db_settings, user, password)] \
        == [bad_uidl]
    assert len(_letters(db_settings)) == 1


def test_a_message_that_kills_the_process_is_dead_lettered_after_max_attempts(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str],
) -> None:
    """Each ``mailroom run ingest`` dies holding the message (a fault point right after its
    FETCH): the attempts are counted in PostgreSQL, so a later process passes it."""
    user, password = mail_user
    seed_maildir(db_settings, user, [message(0)])
    mb = add_mailbox(db, db_settings, user, password)
    publish_mailboxes(db_settings, db)
    for _ in range(db_settings.max_attempts):
        crashed = run_ingest(db_settings, "ingest:after_fetch")
        _, err = crashed.communicate(timeout=120)
        assert crashed.returncode == -signal.SIGKILL, err.decode()[-2000:]
    survivor = run_ingest(db_settings, "ingest:after_fetch", extra_env=FAST_RETRY)
    try:
        deadline = time.monotonic() + 90
        while not _letters(db_settings) and time.monotonic() < deadline:
            assert survivor.poll() is None, "the process died again"
            time.sleep(1)
        [letter] = _letters(db_settings)
        assert letter.reason_code == "unfetchable" and letter.attempts == db_settings.max_attempts
        assert "the process died fetching it" in letter.reason
        assert letter.source_key is not None
        assert letter.source_key.decode().startswith(f"{mb.id}/INBOX/")
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(timeout=60)


def test_run_ingest_keeps_running_past_a_message_the_server_cannot_read(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str],
) -> None:
    user, password = mail_user
    msgs = [message(i) for i in range(3)]
    seed_maildir(db_settings, user, msgs)
    os.chmod(_maildir_files(db_settings, user)[1], 0)
    add_mailbox(db, db_settings, user, password)
    publish_mailboxes(db_settings, db)
    proc = run_ingest(db_settings, extra_env=FAST_RETRY)
    try:
        later = message(3)
        seed_maildir(db_settings, user, [later])
        raws = read_raw(db_settings, 3, timeout_s=120)
        assert proc.poll() is None, "ingest died"
        assert sorted(r.content or b"" for r in raws) == sorted([msgs[0], msgs[2], later])
        assert [x.reason_code for x in _letters(db_settings)] == ["unfetchable"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
