"""Ingest processes share mailboxes through their consumer group on the mailboxes topic.

Real Kafka, PostgreSQL and Dovecot. Mail is seeded straight into the Maildirs, so every login
in Dovecot's log during the test is an ingest process's.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from ingest_helpers import (
    add_mailbox,
    message,
    publish_mailboxes,
    read_raw,
    run_ingest,
    seed_maildir,
)

from ingest import store
from ingest.assignment import Assignment
from ingest.model import Mailbox
from ingest.runner import Ingestor
from mailroom.console.stack import dovecot
from mailroom.db import connect
from mailroom.kafka import make_producer
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

MAILBOXES = 6  # ids 1..6 hash to six different partitions of six
WAVE = 30
WAVE2 = 100


def _users(settings: Settings, n: int) -> list[tuple[str, str]]:
    users = []
    for _ in range(n):
        name, password = "s" + uuid.uuid4().hex[:10], "pw-" + uuid.uuid4().hex[:8]
        dovecot.add_user(settings, name, password)
        users.append((name, password))
    time.sleep(1.1)  # Dovecot notices new passwd files by mtime (one-second resolution)
    return users


def _wait(what: str, done: Callable[[], bool], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _checkpoints_at(db: psycopg.Connection, boxes: list[Mailbox], last_uid: int) -> bool:
    cps = [store.checkpoint(db, m.id or 0, "INBOX") for m in boxes]
    db.commit()
    return all(cp is not None and cp.last_uid >= last_uid for cp in cps)


def _published_by(log: Path) -> set[str]:
    """Addresses of the mailboxes a process published messages of (from its own log)."""
    return set(re.findall(r"mailbox=(\S+) published=\d+", log.read_text(errors="replace")))


def _assigned(log: Path) -> list[list[str]]:
    text = log.read_text(errors="replace")
    return [m.split(", ") if m else [] for m in
            re.findall(r"mailboxes partitions assigned: \[([^\]]*)\]", text)]


def sessions_overlapping(log_lines: list[str], users: set[str]) -> list[str]:
    """Per user, sessions open at the same time, from Dovecot's log in its own order.

    One ingest process serves a mailbox over one connection at a time, so two sessions of one
    user open at once can only mean two processes serving it. Dovecot writes the log through
    one log process, so its line order is the order of logins and disconnects.
    """
    login = re.compile(r"(?:imap|pop3)-login: Info: Login: user=<([^>]+)>.*session=<([^>]+)>")
    gone = re.compile(r"(?:imap|pop3)\(([^)]+)\)<\d+><([^>]+)>: Info: Disconnected")
    open_sessions: dict[str, set[str]] = {}
    overlaps = []
    for line in log_lines:
        if m := login.search(line):
            user, session = m.groups()
            if user in users:
                if open_sessions.get(user):
                    overlaps.append(line)
                open_sessions.setdefault(user, set()).add(session)
        elif m := gone.search(line):
            open_sessions.get(m.group(1), set()).discard(m.group(2))
    return overlaps


def test_sessions_overlapping_reads_dovecot_log() -> None:
    lines = [
        "imap-login: Info: Login: user=<a>, method=PLAIN, session=<1>",
        "imap(a)<10><1>: Info: Disconnected: Logged out",
        "imap-login: Info: Login: user=<a>, method=PLAIN, session=<2>",
        "imap-login: Info: Login: user=<b>, method=PLAIN, session=<3>",
        "imap-login: Info: Login: user=<a>, method=PLAIN, session=<4>",
    ]
    assert sessions_overlapping(lines, {"a", "b"}) == [lines[4]]


def test_two_processes_share_mailboxes_and_hand_over(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, tmp_path: Path
) -> None:
    users = _users(db_settings, MAILBOXES)
    boxes = [add_mailbox(db, db_settings, u, pw) for u, pw in users]
    publish_mailboxes(db_settings, db)
    dovecot_log = dovecot.log_file(db_settings)
    log_from = dovecot_log.stat().st_size
    # Small batches: the SIGTERM lands in the middle of passes.
    settings = db_settings.replace(ingest_batch_size=10)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_start(settings, log) for log in logs]
    try:
        _wait("both processes assigned half of the partitions",
              lambda: all(_assigned(log) and len(_assigned(log)[-1]) == 3 for log in logs))
        sent = [message(i, subject=f"wave1 {u}") for u, _ in users for i in range(WAVE)]
        for n, (u, _) in enumerate(users):
            seed_maildir(db_settings, u, sent[n * WAVE : (n + 1) * WAVE])
        _wait("the first wave", lambda: _checkpoints_at(db, boxes, WAVE))
        by_a, by_b = _published_by(logs[0]), _published_by(logs[1])
        assert by_a and by_b and not by_a & by_b, (by_a, by_b)

        # Wave 2 is large, and the SIGTERM comes while the passes are at it: the stopping
        # process finishes the batch in hand and stops; the other takes over from there.
        second = [message(i, subject=f"wave2 {u}") for u, _ in users for i in range(WAVE2)]
        for n, (u, _) in enumerate(users):
            seed_maildir(db_settings, u, second[n * WAVE2 : (n + 1) * WAVE2])
        a_boxes = [m for m in boxes if m.address in by_a]

        def mid_pass() -> Mailbox | None:  # a checkpoint of A's between two batches
            cps = {m.id: store.checkpoint(db, m.id or 0, "INBOX") for m in a_boxes}
            db.commit()
            return next((m for m in a_boxes if WAVE < (cps[m.id] or store.Checkpoint(0, 0))
                         .last_uid < WAVE + WAVE2), None)

        deadline = time.monotonic() + 30
        while (caught := mid_pass()) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        procs[0].send_signal(signal.SIGTERM)
        assert procs[0].wait(timeout=60) == 0, logs[0].read_text()[-3000:]
        assert caught is not None, "never saw process A between two batches"
        stopped_at = store.checkpoint(db, caught.id or 0, "INBOX")
        db.commit()
        # It finished the batch in hand and stopped, leaving the rest of the pass to B.
        assert stopped_at is not None and stopped_at.last_uid < WAVE + WAVE2
        assert "the batch in hand is done, the pass stops" in logs[0].read_text()
        _wait("the second wave, all served by the remaining process",
              lambda: _checkpoints_at(db, boxes, WAVE + WAVE2))
        assert _assigned(logs[1])[-1] == [str(p) for p in range(6)]  # it took them all
        # Wave 3: the stopped process's mailboxes are served by the remaining one.
        third = [message(i, subject=f"wave3 {u}") for u, _ in users for i in range(WAVE)]
        for n, (u, _) in enumerate(users):
            seed_maildir(db_settings, u, third[n * WAVE : (n + 1) * WAVE])
        _wait("the third wave", lambda: _checkpoints_at(db, boxes, 2 * WAVE + WAVE2))
        assert by_a <= _published_by(logs[1]), (by_a, _published_by(logs[1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)

    raws = read_raw(db_settings, len(sent) + len(second) + len(third))
    assert sorted(r.content or b"" for r in raws) == sorted(sent + second + third)  # once each
    lines = dovecot_log.read_bytes()[log_from:].decode(errors="replace").splitlines()
    names = {u for u, _ in users}
    assert sum(f"user=<{u}>" in line for line in lines for u in names) >= 2 * MAILBOXES
    assert sessions_overlapping(lines, names) == []


def _start(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return run_ingest(settings, stderr=out, extra_env={
            "MAILROOM_INGEST_BATCH_SIZE": str(settings.ingest_batch_size),
        })


def test_a_process_that_lost_its_assignment_cannot_move_a_checkpoint(
    db_settings: Settings, db: psycopg.Connection, topics: Settings
) -> None:
    users = _users(db_settings, MAILBOXES)
    boxes = {m.id: m for m in (add_mailbox(db, db_settings, u, pw) for u, pw in users)}
    for u, _ in users:
        seed_maildir(db_settings, u, [message(i, subject=u) for i in range(3)])
    publish_mailboxes(db_settings, db)

    def no_blobs(data: bytes) -> str:
        raise AssertionError("no claim check expected")

    with connect(db_settings, autocommit=True) as tokens_a, \
            connect(db_settings, autocommit=True) as tokens_b, \
            connect(db_settings) as conn_b:
        a = Assignment.join(db_settings, tokens_a, "test-a")
        b: Assignment | None = None
        producer = make_producer(db_settings)
        try:
            _wait("A owns every mailbox",
                  lambda: a.poll(200) or len(a.mailbox_ids()) == MAILBOXES, timeout_s=30)
            ing_a = Ingestor(db_settings, db, producer, no_blobs, assignment=a)
            # Alone in its group, A may still see one rebalance of its own (its first metadata
            # arriving after it joined): the passes after it stop at the changed token and the
            # next round does them. Every message exactly once in the end, whatever the rounds.
            published = [ing_a.run_once()]

            def all_published() -> bool:
                a.poll(200)
                published.append(ing_a.run_once())
                return sum(published) >= 3 * MAILBOXES

            if sum(published) < 3 * MAILBOXES:
                _wait("A publishes every mailbox's mail", all_published, timeout_s=60)
            assert sum(published) == 3 * MAILBOXES
            token_a = a.token
            assert token_a is not None
            held_by_a = a.mailbox_ids()

            b = Assignment.join(db_settings, tokens_b, "test-b")
            bb = b

            def shared() -> bool:  # both poll: an eager rebalance needs every member to rejoin
                bb.poll(200)
                a.poll(200)
                return bool(a.token and bb.token and a.mailbox_ids() and bb.mailbox_ids()
                            and len(a.mailbox_ids() | bb.mailbox_ids()) == MAILBOXES)

            # An eager rebalance: both must rejoin; on a busy machine that can take a while.
            _wait("A and B share the mailboxes", shared, timeout_s=90)
            moved = held_by_a - a.mailbox_ids()
            assert moved and moved == b.mailbox_ids()
            for mid in moved:
                seed_maildir(db_settings, boxes[mid].username, [message(9, subject="late")] * 2)
            ing_b = Ingestor(db_settings, conn_b, producer, no_blobs, assignment=b)
            assert ing_b.run_once() == 2 * len(moved)
            assert b.token is not None and b.token > token_a

            for mid in moved:
                assert not a.serves(mid, token_a)  # A's pass would stop at its next batch
                uidvalidity = (store.checkpoint(db, mid, "INBOX") or store.Checkpoint(0, 0))
                with pytest.raises(store.Fenced):  # neither back ...
                    store.advance(db, mid, "INBOX", uidvalidity.uidvalidity, 1, token_a, [],
                                  None)
                db.rollback()
                with pytest.raises(store.Fenced):  # ... nor forth
                    store.advance(db, mid, "INBOX", uidvalidity.uidvalidity, 99, token_a, [],
                                  None)
                db.rollback()
                with pytest.raises(store.Fenced):
                    store.reset_checkpoint(db, mid, "INBOX", 12345, token_a)
                db.rollback()
                cp = store.checkpoint(db, mid, "INBOX")
                assert cp is not None and cp.last_uid == 5
                # A stale ingestor skips the mailbox instead of claiming it back.
                assert ing_a.poll(boxes[mid]) == 0
                assert store.checkpoint(db, mid, "INBOX") == cp
        finally:
            producer.close()
            a.close()
            if b is not None:
                b.close()
