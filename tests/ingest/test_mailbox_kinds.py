"""A forward mailbox over IMAP (move after ack) and over POP3 (delete after ack), and a queue
mailbox over IMAP (delete after ack): the RawMail says whose mail it is, the server is cleaned
up only after the broker has the message."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from ingest_helpers import add_mailbox, append, imap_login, ingestor, message, read_raw

from ingest.model import AfterIngest, OwnerKind, Protocol
from mailroom.console.stack import dovecot
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def _user(settings: Settings) -> tuple[str, str]:
    name, password = "k" + uuid.uuid4().hex[:10], "pw-" + uuid.uuid4().hex[:8]
    dovecot.add_user(settings, name, password)
    return name, password


def test_forward_and_queue_mailboxes_over_imap_and_pop3(
    db_settings: Settings, db: psycopg.Connection, topics: Settings
) -> None:
    fwd_imap, fwd_pop3, queue = (_user(db_settings) for _ in range(3))
    mails = {u: [message(i, subject=f"to {u}") for i in range(3)]
             for u, _ in (fwd_imap, fwd_pop3, queue)}
    for u, pw in (fwd_imap, fwd_pop3, queue):
        append(db_settings, u, pw, mails[u])
    append(db_settings, *fwd_imap, [], folder="Processed")
    add_mailbox(db, db_settings, *fwd_imap, owner=OwnerKind.FORWARD, after=AfterIngest.MOVE,
                move_to="Processed")
    add_mailbox(db, db_settings, *fwd_pop3, protocol=Protocol.POP3, owner=OwnerKind.FORWARD,
                after=AfterIngest.DELETE)
    add_mailbox(db, db_settings, *queue, owner=OwnerKind.QUEUE, after=AfterIngest.DELETE)

    assert ingestor(db_settings, db).run_once() == 9
    raws = read_raw(db_settings, 9)
    assert len(raws) == 9
    by_user = {u: {(r.owner_kind, r.protocol, r.content) for r in raws
                   if r.mailbox_address == f"{u}@example.com"} for u in mails}
    assert by_user[fwd_imap[0]] == {("forward", "imap", m) for m in mails[fwd_imap[0]]}
    assert by_user[fwd_pop3[0]] == {("forward", "pop3", m) for m in mails[fwd_pop3[0]]}
    assert by_user[queue[0]] == {("queue", "imap", m) for m in mails[queue[0]]}
    with imap_login(db_settings, *fwd_imap) as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        assert client.select_folder("Processed")[b"EXISTS"] == 3  # moved, not lost
    for u, pw in (fwd_pop3, queue):
        with imap_login(db_settings, u, pw) as client:
            assert client.select_folder("INBOX")[b"EXISTS"] == 0  # deleted after the ack
    # A second pass finds nothing new and publishes nothing again.
    assert ingestor(db_settings, db).run_once() == 0
