"""POP3 ingest against the real Dovecot, Kafka and PostgreSQL."""

from __future__ import annotations

import poplib
import signal
import time

import psycopg
import pytest
from ingest_helpers import (
    add_mailbox,
    append,
    ingestor,
    message,
    publish_mailboxes,
    read_raw,
    run_ingest,
)

from ingest import store
from ingest.model import AfterIngest, OwnerKind, Protocol, Tls
from mailroom.console.stack import tls
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def _count(settings: Settings, user: str, password: str) -> int:
    conn = poplib.POP3("127.0.0.1", settings.pop3_port, timeout=30)
    conn.user(user)
    conn.pass_(password)
    n = conn.stat()[0]
    conn.quit()
    return n


def test_pop3_user_mailbox_keeps_mail_and_publishes_once(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    msgs = [message(i) for i in range(4)]
    append(db_settings, user, password, msgs)
    mb = add_mailbox(db, db_settings, user, password, protocol=Protocol.POP3)
    ing = ingestor(db_settings, db)
    assert ing.run_once() == 4
    ing.scheduler.all_due()
    assert ing.run_once() == 0  # the UIDL set remembers them
    raws = read_raw(db_settings, 4)
    assert sorted(r.content or b"" for r in raws) == sorted(msgs)  # byte-identical
    assert all(r.protocol == "pop3" and r.uidl and r.uid is None for r in raws)
    assert len(store.published_uidls(db, mb.id or 0)) == 4
    assert _count(db_settings, user, password) == 4  # not configured to delete


def test_pop3s_queue_mailbox_deletes_after_ack(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    append(db_settings, user, password, [message(i) for i in range(3)])
    mb = add_mailbox(db, db_settings, user, password, protocol=Protocol.POP3,
                     tls=Tls.IMPLICIT, port=db_settings.pop3s_port,
                     trust_cafile=str(tls.cert_file(db_settings)),
                     owner=OwnerKind.QUEUE, after=AfterIngest.DELETE)
    assert ingestor(db_settings, db).run_once() == 3
    assert _count(db_settings, user, password) == 0
    assert len(read_raw(db_settings, 3)) == 3
    ing = ingestor(db_settings, db)
    ing.run_once()
    assert store.published_uidls(db, mb.id or 0) == set()  # pruned: gone from the server


def test_pop3_crash_before_quit_deletes_without_republishing(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    msgs = [message(i) for i in range(5)]
    append(db_settings, user, password, msgs)
    add_mailbox(db, db_settings, user, password, protocol=Protocol.POP3,
                owner=OwnerKind.QUEUE, after=AfterIngest.DELETE)
    publish_mailboxes(db_settings, db)
    crashed = run_ingest(db_settings, "ingest:pop3_after_record")
    crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL
    assert _count(db_settings, user, password) == 5  # DELE never reached QUIT
    again = run_ingest(db_settings)
    try:
        deadline = time.monotonic() + 60
        while _count(db_settings, user, password) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=60)
    assert _count(db_settings, user, password) == 0
    raws = read_raw(db_settings, 5)
    assert len(raws) == 5 and sorted(r.content or b"" for r in raws) == sorted(msgs)
