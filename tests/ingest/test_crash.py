"""Crash tests: ``mailroom run ingest`` killed at named fault points, then restarted."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from ingest_helpers import (
    add_mailbox,
    append,
    imap_login,
    message,
    publish_mailboxes,
    read_raw,
    run_ingest,
    seed_maildir,
)

from ingest import store
from ingest.model import AfterIngest, OwnerKind
from mailroom.settings import Settings

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
N = 300  # three batches of 100
N_BIG = 1_000  # ten batches of 100, seeded straight into the Maildir (fast)


def _wait_checkpoint(db: psycopg.Connection, mailbox_id: int, last_uid: int,
                     owed_zero: bool = True, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cp = store.checkpoint(db, mailbox_id, "INBOX")
        owed = store.owed(db, mailbox_id, "INBOX", cp.uidvalidity) if cp else [1]
        db.commit()
        if cp and cp.last_uid >= last_uid and (not owed or not owed_zero):
            return
        time.sleep(0.3)
    raise AssertionError(f"checkpoint did not reach {last_uid}")


def _crash_then_recover(settings: Settings, db: psycopg.Connection, mailbox_id: int,
                        fault: str, n: int = N) -> None:
    publish_mailboxes(settings, db)
    crashed = run_ingest(settings, fault)
    _, err = crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL, err.decode()[-2000:]
    again = run_ingest(settings)
    try:
        _wait_checkpoint(db, mailbox_id, n)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=60)


def test_kill_after_publish_repeats_only_the_interrupted_batch(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    msgs = [message(i) for i in range(N_BIG)]
    seed_maildir(db_settings, user, msgs)
    mb = add_mailbox(db, db_settings, user, password)
    # killed after the broker acknowledged batch 5, before its checkpoint moved
    _crash_then_recover(db_settings, db, mb.id or 0, "ingest:after_publish@5", N_BIG)
    raws = read_raw(db_settings, N_BIG + 100)
    assert len({r.uid for r in raws}) == N_BIG  # 1,000 distinct RawMails
    assert {r.content for r in raws} == set(msgs)  # every message, byte-identical
    counts = Counter(r.uid for r in raws)
    repeats = {uid for uid, n in counts.items() if n > 1}
    assert repeats and all(401 <= (uid or 0) <= 500 for uid in repeats)
    assert max(counts.values()) == 2
    # the repeats are the same bytes
    by_uid: dict[int, set[bytes]] = {}
    for r in raws:
        by_uid.setdefault(r.uid or 0, set()).add(r.content or b"")
    assert all(len(v) == 1 for v in by_uid.values())


def test_kill_between_checkpoint_and_move_leaves_nothing_behind(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    msgs = [message(i) for i in range(N)]
    append(db_settings, user, password, msgs)
    append(db_settings, user, password, [], folder="Done")
    mb = add_mailbox(db, db_settings, user, password, owner=OwnerKind.QUEUE,
                     after=AfterIngest.MOVE, move_to="Done")
    _crash_then_recover(db_settings, db, mb.id or 0, "ingest:after_checkpoint@2")
    raws = read_raw(db_settings, N)
    assert len(raws) == N and {r.content for r in raws} == set(msgs)  # no repeats at all
    with imap_login(db_settings, user, password) as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0  # the owed MOVEs were finished
        assert client.select_folder("Done")[b"EXISTS"] == N
