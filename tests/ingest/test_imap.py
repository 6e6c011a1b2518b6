"""IMAP ingest against the real Dovecot, Kafka and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from ingest_helpers import add_mailbox, append, imap_login, ingestor, message, read_raw

from ingest import store
from ingest.model import Direction, Folder, Tls
from mailroom.console.stack import tls
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def test_user_mailbox_with_sent_folder(db_settings: Settings, db: psycopg.Connection,
                                       topics: Settings, mail_user: tuple[str, str]) -> None:
    user, password = mail_user
    inbox = [message(i) for i in range(5)]
    sent = [message(i, "sent") for i in range(2)]
    append(db_settings, user, password, inbox)
    append(db_settings, user, password, sent, folder="Sent")
    mb = add_mailbox(db, db_settings, user, password,
                     folders=(Folder("INBOX"), Folder("Sent", Direction.OUTGOING)))
    ing = ingestor(db_settings, db)
    assert ing.run_once() == 7
    raws = read_raw(db_settings, 7)
    assert len(raws) == 7
    by_folder = {f: sorted((r.uid or 0, r.content) for r in raws if r.folder == f)
                 for f in ("INBOX", "Sent")}
    assert [c for _, c in by_folder["INBOX"]] == inbox  # byte-identical, in UID order
    assert [c for _, c in by_folder["Sent"]] == sent
    assert {r.direction for r in raws if r.folder == "Sent"} == {"outgoing"}
    assert {r.direction for r in raws if r.folder == "INBOX"} == {"incoming"}
    assert all(r.mailbox_id == str(mb.id) and r.owner_kind == "user" for r in raws)
    assert all(r.server_date is not None and r.size == len(r.content or b"") for r in raws)
    # flagged with the keyword, never marked read (BODY.PEEK)
    with imap_login(db_settings, user, password) as client:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search())
        assert all(mb.keyword.encode() in f and b"\\Seen" not in f for f in flags.values())
    # nothing new: nothing published again
    ing.scheduler.all_due()
    assert ing.run_once() == 0
    cp = store.checkpoint(db, mb.id or 0, "INBOX")
    assert cp is not None and cp.last_uid == 5
    assert store.mailbox(db, mb.id or 0).status == "ok"


def test_imaps_with_explicitly_trusted_certificate(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    append(db_settings, user, password, [message(1)])
    add_mailbox(db, db_settings, user, password, tls=Tls.IMPLICIT,
                port=db_settings.imaps_port,
                trust_cafile=str(tls.cert_file(db_settings)))
    assert ingestor(db_settings, db).run_once() == 1


def test_untrusted_certificate_is_a_tls_failure(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    mb = add_mailbox(db, db_settings, user, password, tls=Tls.IMPLICIT,
                     port=db_settings.imaps_port)
    assert ingestor(db_settings, db).run_once() == 0
    m = store.mailbox(db, mb.id or 0)
    assert m.status == "retrying" and "TLS failure" in m.status_detail and m.enabled


def test_wrong_password_disables_without_retrying(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    good_user = mail_user  # the same server keeps serving other mailboxes
    mb = add_mailbox(db, db_settings, user, "wrong-" + password)
    ing = ingestor(db_settings, db)
    ing.run_once()
    m = store.mailbox(db, mb.id or 0)
    assert not m.enabled and m.status == "disabled"
    assert "authentication refused" in m.status_detail
    ing.scheduler.all_due()
    ing.run_once()  # a disabled mailbox is not polled: no second login attempt
    assert store.failures(db, mb.id or 0) == 0
    del good_user


def test_uidvalidity_change_resyncs(db_settings: Settings, db: psycopg.Connection,
                                    topics: Settings, mail_user: tuple[str, str]) -> None:
    user, password = mail_user
    append(db_settings, user, password, [message(i) for i in range(3)])
    mb = add_mailbox(db, db_settings, user, password)
    ing = ingestor(db_settings, db)
    assert ing.run_once() == 3
    # A server that lost its UID state: pretend our checkpoint is from an older UIDVALIDITY.
    db.execute("UPDATE ingest_checkpoints SET uidvalidity = uidvalidity - 1, last_uid = 99")
    db.commit()
    ing.scheduler.all_due()
    assert ing.run_once() == 3  # re-synced: every message again, none skipped
    raws = read_raw(db_settings, 6)
    assert len(raws) == 6 and len({r.content for r in raws}) == 3
    assert store.checkpoint(db, mb.id or 0, "INBOX") is not None


def test_backlog_is_kept_current_while_it_drains(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    append(db_settings, user, password, [message(i) for i in range(25)])
    mb = add_mailbox(db, db_settings, user, password)
    ing = ingestor(db_settings.replace(ingest_batch_size=10), db)
    ing.stop.set()  # shutting down: the pass finishes the batch in hand and stops
    assert ing.poll(mb) == 0
    (folder,) = store.backlog(db)
    assert (folder.address, folder.folder, folder.count) == (mb.address, "INBOX", 15)
    assert folder.oldest is not None and folder.oldest <= datetime.now(UTC)
    cp = store.checkpoint(db, mb.id or 0, "INBOX")
    assert cp is not None and cp.last_uid == 10
    ing.stop.clear()
    assert ing.poll(mb) == 15
    (folder,) = store.backlog(db)
    assert folder.count == 0 and folder.oldest is None
