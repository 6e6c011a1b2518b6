"""A message over ``ingest_max_message_bytes`` by the server's own count is never fetched: it is
dead-lettered ``too_large`` (mailbox, UID or UIDL, size, no payload) and passed, left untouched
on the server, and the mail around it arrives. Real Dovecot, Kafka and PostgreSQL."""

from __future__ import annotations

import poplib

import psycopg
import pytest
from ingest_helpers import add_mailbox, imap_login, ingestor, message, read_raw, seed_maildir

from ingest import store
from ingest.model import AfterIngest, OwnerKind, Protocol
from mailroom.codec import Codec
from mailroom.console.ops.dlq import read_letters
from mailroom.records import DeadLetter
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

LIMIT = 20_000


def _letters(settings: Settings) -> list[DeadLetter]:
    return [x.letter for x in read_letters(settings, Codec.from_settings(settings))
            if x.letter is not None]


def _pop3_uidls(settings: Settings, user: str, password: str) -> list[str]:
    conn = poplib.POP3("127.0.0.1", settings.pop3_port, timeout=30)
    conn.user(user)
    conn.pass_(password)
    lines = conn.uidl()[1]
    conn.quit()
    return [line.split()[1].decode() for line in lines]


def _assert_too_large(letter: DeadLetter, settings: Settings, address: str, key: str) -> None:
    assert letter.stage == "ingest" and letter.reason_code == "too_large"
    assert letter.source_key == key.encode() and letter.source_topic == settings.topic("raw")
    assert letter.payload is None and letter.blob_ref is None  # never fetched
    assert address in letter.reason and f"({LIMIT})" in letter.reason


def test_imap_message_over_the_cap_is_dead_lettered_passed_and_never_flagged(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str],
) -> None:
    settings = db_settings.replace(ingest_max_message_bytes=LIMIT)
    user, password = mail_user
    msgs = [message(0), message(1, size=3 * LIMIT), message(2)]
    seed_maildir(settings, user, msgs)
    mb = add_mailbox(db, settings, user, password)
    ing = ingestor(settings, db)
    assert ing.run_once() == 2
    [letter] = _letters(settings)
    with imap_login(settings, user, password) as client:
        uidvalidity = int(client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"])
        size = client.fetch([2], [b"RFC822.SIZE"])[2][b"RFC822.SIZE"]
    _assert_too_large(letter, settings, mb.address, f"{mb.id}/INBOX/{uidvalidity}/2")
    assert "UID 2" in letter.reason and f"{size} bytes" in letter.reason
    assert sorted(r.content or b"" for r in read_raw(settings, 2)) == sorted([msgs[0], msgs[2]])
    assert store.checkpoint(db, mb.id or 0, "INBOX") == store.Checkpoint(uidvalidity, 3)
    # later mail arrives; the big one is neither fetched nor dead-lettered again
    later = message(3)
    seed_maildir(settings, user, [later])
    ing.scheduler.all_due()
    assert ing.run_once() == 1
    assert len(read_raw(settings, 3)) == 3
    assert len(_letters(settings)) == 1
    with imap_login(settings, user, password) as client:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags([1, 2, 4])
    assert mb.keyword.encode() in flags[1] and mb.keyword.encode() in flags[4]
    assert mb.keyword.encode() not in flags[2]  # never marked: it never reached the topic


def test_pop3_message_over_the_cap_is_dead_lettered_and_never_deleted(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str],
) -> None:
    settings = db_settings.replace(ingest_max_message_bytes=LIMIT)
    user, password = mail_user
    msgs = [message(0), message(1, size=3 * LIMIT), message(2)]
    seed_maildir(settings, user, msgs)
    big_uidl = _pop3_uidls(settings, user, password)[1]
    mb = add_mailbox(db, settings, user, password, protocol=Protocol.POP3,
                     owner=OwnerKind.QUEUE, after=AfterIngest.DELETE)
    ing = ingestor(settings, db)
    assert ing.run_once() == 2
    [letter] = _letters(settings)
    _assert_too_large(letter, settings, mb.address, f"{mb.id}/pop3/{big_uidl}")
    assert big_uidl in letter.reason
    assert sorted(r.content or b"" for r in read_raw(settings, 2)) == sorted([msgs[0], msgs[2]])
    assert _pop3_uidls(settings, user, password) == [big_uidl]  # the rest deleted, not it
    # later mail arrives and is deleted; the big one stays, never fetched or dead-lettered again
    seed_maildir(settings, user, [message(3)])
    ing.scheduler.all_due()
    assert ing.run_once() == 1
    assert len(read_raw(settings, 3)) == 3
    assert _pop3_uidls(settings, user, password) == [big_uidl]
    assert len(_letters(settings)) == 1
