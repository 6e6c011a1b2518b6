"""IMAP IDLE: a process serving one mailbox waits in IDLE on its INBOX; a message appended
meanwhile is published without waiting for the poll interval (here 10 minutes)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from ingest_helpers import add_mailbox, append, ingestor, message, read_raw

from ingest import store
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def _wait(what: str, done: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_message_appended_while_idling_arrives_through_idle(
    db_settings: Settings, db: psycopg.Connection, topics: Settings,
    mail_user: tuple[str, str],
) -> None:
    user, password = mail_user
    append(db_settings, user, password, [message(1)])
    box = add_mailbox(db, db_settings, user, password)
    db.execute("UPDATE ingest_profiles SET poll_interval_s = 600")  # polling would be too late
    db.commit()
    settings = db_settings.replace(ingest_idle_wait_ms=1000)
    ing = ingestor(settings, db)
    runner = threading.Thread(target=ing.run, name="ingest")
    runner.start()
    try:
        assert len(read_raw(settings, 1)) == 1  # the first pass
        watcher = psycopg.connect(settings.database_url, autocommit=True)
        assert box.id is not None
        _wait("the first pass's checkpoint", lambda: (store.checkpoint(
            watcher, box.id, "INBOX") or store.Checkpoint(0, 0)).last_uid == 1)
        watcher.close()
        time.sleep(1.5)  # well into IDLE (rounds of 1 s)
        append(db_settings, user, password, [message(2, subject="while idling")])
        raws = read_raw(settings, 2)
        assert sorted(r.uid or 0 for r in raws) == [1, 2]
        assert ing.metrics.idle_wakeups._value.get() >= 1  # the IDLE path took it
    finally:
        ing.stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()  # SIGTERM/stop is honoured between IDLE rounds
