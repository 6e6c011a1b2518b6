"""The store against a real PostgreSQL: fencing, checkpoints, owed actions, encryption."""

import psycopg
import pytest

from ingest import credentials, store
from ingest.model import AfterIngest, Direction, Folder, Mailbox, OwnerKind, Profile, Protocol
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def _mailbox(db: psycopg.Connection, settings: Settings) -> int:
    pid = store.add_profile(db, Profile("local", Protocol.IMAP, "127.0.0.1", 10993))
    return store.add_mailbox(db, Mailbox(
        "queue@example.com", OwnerKind.QUEUE, pid, "queue",
        credentials.encrypt(settings, "s3cret"),
        folders=(Folder("INBOX"), Folder("Sent", Direction.OUTGOING)),
        after_ingest=AfterIngest.MOVE, move_to="Done",
    ))


def test_mailbox_round_trip_keeps_secret_encrypted(db: psycopg.Connection,
                                                    db_settings: Settings) -> None:
    mid = _mailbox(db, db_settings)
    m = store.mailbox(db, "queue@example.com")
    assert m.id == mid and m.folders[1] == Folder("Sent", Direction.OUTGOING)
    raw = db.execute("SELECT secret FROM ingest_mailboxes").fetchone()
    assert raw is not None and b"s3cret" not in bytes(raw[0])
    assert credentials.decrypt(db_settings, m.secret) == "s3cret"


def test_a_claim_answers_the_status_it_found(db: psycopg.Connection,
                                             db_settings: Settings) -> None:
    mid = _mailbox(db, db_settings)
    old, new = store.new_generation(db), store.new_generation(db)
    assert store.claim_status(db, mid, old) == "new"  # taken: the status as of the claim
    store.set_status(db, mid, "retrying", "server away")
    assert store.claim_status(db, mid, old) == "retrying"  # held already: a read
    assert store.claim_status(db, mid, new) == "retrying"
    assert store.claim_status(db, mid, old) is None  # a newer process holds it
    db.commit()


def test_a_fenced_process_cannot_move_the_checkpoint(db: psycopg.Connection,
                                                     db_settings: Settings) -> None:
    mid = _mailbox(db, db_settings)
    old, new = store.new_generation(db), store.new_generation(db)
    assert store.claim(db, mid, old)
    store.reset_checkpoint(db, mid, "INBOX", 77, old)
    store.advance(db, mid, "INBOX", 77, 5, old, [1, 2, 5], AfterIngest.MOVE)
    db.commit()
    assert store.owed(db, mid, "INBOX", 77) == [1, 2, 5]
    assert store.claim(db, mid, new)
    assert not store.claim(db, mid, old)  # the older process cannot take it back
    db.commit()
    with pytest.raises(store.Fenced):
        store.advance(db, mid, "INBOX", 77, 9, old, [9], AfterIngest.MOVE)
    db.rollback()
    assert store.checkpoint(db, mid, "INBOX") == store.Checkpoint(77, 5)
    store.done(db, mid, "INBOX", 77, [1, 2])
    assert store.owed(db, mid, "INBOX", 77) == [5]
    # a UIDVALIDITY change drops owed actions (old UIDs name other messages now)
    store.reset_checkpoint(db, mid, "INBOX", 78, new)
    assert store.owed(db, mid, "INBOX", 77) == []
    assert store.checkpoint(db, mid, "INBOX") == store.Checkpoint(78, 0)


def test_status_transitions(db: psycopg.Connection, db_settings: Settings) -> None:
    mid = _mailbox(db, db_settings)
    store.set_status(db, mid, "retrying", "host unreachable")
    store.set_status(db, mid, "retrying", "host unreachable")
    assert store.failures(db, mid) == 2
    store.set_status(db, mid, "disabled", "authentication refused", disabled_kind="permanent")
    m = store.mailbox(db, mid)
    assert not m.enabled and m.status_detail == "authentication refused"
    assert store.mailboxes(db, runnable_only=True) == []
    store.set_enabled(db, mid, True)
    assert store.mailbox(db, mid).enabled and store.failures(db, mid) == 0
