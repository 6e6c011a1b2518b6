"""The runner's reads of every mailbox keep to a share of its time; a status is announced once.

Reading the runnable list every 2 s whatever its length made a round's cost grow with the square
of the mailboxes (at ten thousand, thirty reads of ten thousand rows a round). The reads now
stretch with their cost (:mod:`ingest.cadence`), so the list in hand may be older than a pass:
a status change is still published once (the pass reads the status it starts from), not at
every pass until the next read.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from ingest_helpers import add_mailbox, message, seed_maildir
from pipeline_testing import read_all

from ingest import credentials, store
from ingest.assignment import Assignment
from ingest.cadence import SHARE, Cadence
from ingest.model import Mailbox, OwnerKind, Profile, Protocol, Tls
from ingest.runner import REFRESH_AT_MOST_S, REFRESH_EVERY_S, Ingestor
from mailroom.kafka import make_producer
from mailroom.settings import Settings


class Clock:
    """Time that moves only when read: each read is ``step`` seconds after the one before."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_quick_read_comes_every_interval() -> None:
    cadence = Cadence(2.0, clock=Clock(0.01))  # each run takes 0.01 s
    assert cadence.due()  # never ran
    cadence.run(lambda: None)
    assert cadence.last_at is not None
    assert cadence.interval_s == 2.0
    assert not cadence.due(now=cadence.last_at + 1.9)
    assert cadence.due(now=cadence.last_at + 2.0)


def test_a_slow_read_comes_no_sooner_than_its_share_allows() -> None:
    cadence = Cadence(2.0, share=0.05, clock=Clock(1.5))  # each run takes 1.5 s
    assert cadence.run(lambda: "read") == "read"
    assert cadence.last_at is not None
    assert cadence.took_s == pytest.approx(1.5)
    assert cadence.interval_s == pytest.approx(30.0)  # 1.5 s is 5% of 30 s
    assert not cadence.due(now=cadence.last_at + 2.0)
    assert not cadence.due(now=cadence.last_at + 29.0)
    assert cadence.due(now=cadence.last_at + 30.0)


def test_a_very_slow_read_still_comes_within_its_longest_interval() -> None:
    cadence = Cadence(2.0, share=0.05, most_s=60.0, clock=Clock(10.0))  # each run 10 s
    cadence.run(lambda: None)
    assert cadence.last_at is not None
    assert cadence.interval_s == 60.0  # not 200 s: what it reads must not grow too old
    assert cadence.due(now=cadence.last_at + 60.0)


def test_a_share_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="share"):
        Cadence(2.0, share=0.0)


def test_the_runners_list_read_stretches_with_its_cost(
    db_settings: Settings, db: psycopg.Connection
) -> None:
    """On the real database: a list read that took long is not repeated 2 s later."""
    pid = store.add_profile(db, Profile("many", Protocol.IMAP, "127.0.0.1",
                                        db_settings.imap_port, tls=Tls.NONE))
    profile = store.profile(db, pid)
    secret = credentials.encrypt(db_settings, "unused")
    store.add_mailboxes(db, profile, [
        Mailbox(f"m{i}@example.com", OwnerKind.USER, pid, f"m{i}", secret) for i in range(300)
    ])
    db.commit()

    def no_blobs(data: bytes) -> str:
        raise AssertionError("nothing is fetched in this test")

    ing = Ingestor(db_settings, db, make_producer(db_settings), no_blobs)
    try:
        assert ing.list_reads.every_s == REFRESH_EVERY_S
        assert ing.list_reads.share == SHARE
        assert ing.list_reads.most_s == REFRESH_AT_MOST_S
        # The look for due mailboxes (over every one) comes once a tick, not at every turn.
        assert ing.looks.every_s == db_settings.ingest_idle_tick_ms / 1000
        ing.list_reads.clock = Clock(1.5)  # as if the read took 1.5 s (a busy database)
        assert ing.list_reads.due()
        ing.list_reads.run(ing.refresh)
        assert len(ing._boxes) == 300  # noqa: SLF001 - the list the loop hands the scheduler
        last = ing.list_reads.last_at
        assert last is not None
        assert not ing.list_reads.due(now=last + REFRESH_EVERY_S)
        assert ing.list_reads.due(now=last + 1.5 / SHARE)
    finally:
        ing.producer.close()


def _records_of(settings: Settings, mailbox_id: int) -> int:
    """How many records the mailboxes topic holds for one mailbox (compaction aside: a test
    topic's segments are not compacted within a test)."""
    return sum(1 for r in read_all(settings, "mailboxes", timeout=30)
               if r.key == str(mailbox_id).encode())


def test_a_status_change_is_announced_once_while_the_list_is_older(
    db_settings: Settings, db: psycopg.Connection, topics: Settings,
    mail_user: tuple[str, str],
) -> None:
    user, password = mail_user
    seed_maildir(db_settings, user, [message(1)])
    time.sleep(1.1)  # Dovecot notices a new passwd file by its mtime (one-second resolution)
    box = add_mailbox(db, db_settings, user, password)
    assert box.id is not None and box.status == "new"
    from ingest import announce

    producer = make_producer(db_settings)
    with psycopg.connect(db_settings.dsn, autocommit=True) as tokens:
        assignment = Assignment.join(db_settings, tokens, "test-announce")
        try:
            announce.publish(db_settings, db, producer, [box.id])
            db.commit()
            deadline = time.monotonic() + 60
            while box.id not in assignment.mailbox_ids() or assignment.token is None:
                assert time.monotonic() < deadline, "the process never owned the mailbox"
                assignment.poll(200)

            def no_blobs(data: bytes) -> str:
                raise AssertionError("no claim check expected")

            ing = Ingestor(db_settings, db, producer, no_blobs, assignment=assignment)
            ing.refresh()
            [listed] = ing._boxes  # noqa: SLF001 - the list in hand, read before any pass
            assert listed.status == "new"
            # Two passes on the list in hand, as between two reads of a long list: the first
            # changes the status (new -> ok) and announces it; the second changes nothing.
            published, deadline = 0, time.monotonic() + 60
            while store.status(db, box.id) != "ok":  # a rebalance of its own stops a pass
                assert time.monotonic() < deadline, store.status(db, box.id)
                assignment.poll(200)
                published += ing.poll(listed)
            assert published == 1
            assert ing.poll(listed) == 0
            db.commit()
            assert _records_of(db_settings, box.id) == 2  # the mailbox added, then ok once
        finally:
            assignment.close()
            producer.close()
