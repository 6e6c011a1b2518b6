"""A mailbox whose server keeps failing is disabled as an outage after
``ingest_disable_after_failures`` transient failures in a row, and re-enabled by the revive
round once the server answers again; then its mail is fetched. A mailbox the server refused
(wrong password: permanent) is never revived — that waits for an administrator.

The "server" is a TCP relay to the stack's Dovecot on a port of its own: closed during the
outage, relaying once it is over, so the profile never changes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from ingest_helpers import add_mailbox, ingestor, message, read_raw, seed_maildir

from ingest import store
from mailroom.console.stack import dovecot
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


class Relay:
    """Accepts on ``port`` and pipes each connection to Dovecot's IMAP port."""

    def __init__(self, port: int, target: int) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.target = target
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed.set()
        self.server.close()


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port nobody listens on (yet)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


def test_an_outage_disables_and_the_revive_round_brings_the_mailbox_back(
    db_settings: Settings, db: psycopg.Connection, topics: Settings,
    mail_user: tuple[str, str], dead_port: int,
) -> None:
    settings = db_settings.replace(ingest_disable_after_failures=3)
    user, password = mail_user
    box = add_mailbox(db, settings, user, password, port=dead_port)
    other = "o" + uuid.uuid4().hex[:10]
    dovecot.add_user(settings, other, "the-password")
    refused = add_mailbox(db, settings, other, "not-the-password")
    assert box.id is not None and refused.id is not None
    seed_maildir(settings, user, [message(1, subject="after the outage")])
    ing = ingestor(settings, db)

    def poll() -> None:
        ing.run_once()
        ing.scheduler.due_now([box.id or 0])  # no waiting out the backoff in a test

    for failures in (1, 2):
        poll()
        m = store.mailbox(db, box.id)
        assert (m.enabled, m.status, store.failures(db, box.id)) == (True, "retrying", failures)
    poll()
    m = store.mailbox(db, box.id)
    assert (m.enabled, m.status) == (False, "disabled")
    assert m.status_detail.startswith("outage: ")
    [(kind,)] = db.execute("SELECT disabled_kind FROM ingest_mailboxes WHERE id = %s",
                           (box.id,)).fetchall()
    assert kind == "transient"
    # The wrong password was refused at once: disabled for good, not as an outage.
    [(kind,)] = db.execute("SELECT disabled_kind FROM ingest_mailboxes WHERE id = %s",
                           (refused.id,)).fetchall()
    assert kind == "permanent"
    assert {m.id for m in store.mailboxes(db, runnable_only=True)} == set()

    # Still down: the revive round probes and leaves it disabled.
    ing.revive()
    assert not store.mailbox(db, box.id).enabled

    relay = Relay(dead_port, settings.imap_port)
    try:
        ing.revive()
        m = store.mailbox(db, box.id)
        assert (m.enabled, m.status) == (True, "new")
        assert not store.mailbox(db, refused.id).enabled  # a refusal waits for an admin
        assert ing.run_once() == 1
        [raw] = read_raw(settings, 1)
        assert raw.mailbox_address == box.address
        assert store.mailbox(db, box.id).status == "ok"
    finally:
        relay.close()
