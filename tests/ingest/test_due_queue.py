"""Which mailboxes are due, read from the scheduler's queue ordered by due time: the same
answers as a look at every mailbox, at the cost of what is due."""

from __future__ import annotations

import threading
import time

from ingest.model import Mailbox, OwnerKind, Profile, Protocol
from ingest.scheduler import Scheduler

PROFILE = Profile(name="p", protocol=Protocol.IMAP, host="127.0.0.1", port=143,
                  poll_interval_s=10_000, id=1)


def box(i: int) -> Mailbox:
    return Mailbox(address=f"u{i}@example.com", owner_kind=OwnerKind.USER, profile_id=1,
                   username=f"u{i}", secret=b"x", id=i)


class Passes:
    """Passes run in the caller's thread (no pool), recorded."""

    def __init__(self) -> None:
        self.ran: list[int] = []
        self.scheduler = Scheduler(self.run, threading.Event(), pool=False)

    def run(self, mailbox: Mailbox, profile: Profile) -> None:
        self.ran.append(mailbox.id or 0)

    def round(self, now: float) -> list[int]:
        """Submit what is due at ``now``; the ids that ran."""
        self.ran = []
        self.scheduler.submit(self.scheduler.due(now), {1: PROFILE})
        return self.ran


def ids(mailboxes: list[Mailbox]) -> list[int]:
    return [m.id or 0 for m in mailboxes]


def test_listed_mailboxes_are_due_at_once_and_again_after_their_interval() -> None:
    p = Passes()
    p.scheduler.listed([box(1), box(2), box(3)], time.monotonic())
    now = time.monotonic()
    assert sorted(p.round(now)) == [1, 2, 3]
    assert p.round(now + 1) == []  # each is due poll_interval_s after its pass started
    assert sorted(p.round(now + 10_001)) == [1, 2, 3]


def test_a_backoff_moves_a_mailbox_later_and_due_now_brings_it_back() -> None:
    p = Passes()
    p.scheduler.listed([box(1), box(2)], time.monotonic())
    now = time.monotonic()
    p.scheduler.defer(2, 600)
    assert p.round(now) == [1]
    assert p.round(now + 61) == []  # 2 is still in its backoff
    p.scheduler.due_now([2])
    assert p.round(now + 62) == [2]
    assert sorted(p.round(now + 20_000)) == [1, 2]


def test_a_disabled_mailbox_is_due_again_only_when_a_later_list_has_it_runnable() -> None:
    p = Passes()
    p.scheduler.listed([box(1)], time.monotonic())
    p.scheduler.defer(1, None)  # disabled by its pass
    far = time.monotonic() + 10**6
    assert p.round(far) == []
    p.scheduler.listed([box(1)], time.monotonic())  # read after: enabled again
    assert p.round(time.monotonic()) == [1]


def test_an_unlisted_mailbox_is_not_due_and_is_due_at_once_when_listed_again() -> None:
    p = Passes()
    p.scheduler.listed([box(1), box(2)], time.monotonic())
    now = time.monotonic()
    assert sorted(p.round(now)) == [1, 2]
    p.scheduler.listed([box(1)], time.monotonic())  # 2 was removed (or went elsewhere)
    assert p.round(now + 61) == []
    p.scheduler.listed([box(1), box(2)], time.monotonic())
    assert p.round(now + 62) == [2]  # came back: due at once, its old due time forgotten


def test_a_queued_mailbox_is_not_handed_out_twice() -> None:
    stop = threading.Event()
    started, release = threading.Event(), threading.Event()

    def slow(mailbox: Mailbox, profile: Profile) -> None:
        started.set()
        release.wait(10)

    scheduler = Scheduler(slow, stop, pool=True)
    scheduler.listed([box(1)], time.monotonic())
    now = time.monotonic()
    assert scheduler.submit(scheduler.due(now), {1: PROFILE}) == 1
    assert started.wait(10)
    scheduler.due_now([1])  # asked again while its pass runs
    assert scheduler.due(now + 1000) == []
    release.set()
    assert scheduler.wait_idle(10)
    assert ids(scheduler.due(time.monotonic() + 10_001)) == [1]  # due after the pass, once
    stop.set()
    scheduler.close()


def test_due_mailboxes_come_soonest_first_and_the_rest_stay_queued() -> None:
    p = Passes()
    boxes = [box(i) for i in range(1, 1001)]
    p.scheduler.listed(boxes, time.monotonic())
    for i in range(1, 1001):
        p.scheduler.defer(i, i)  # mailbox i due i seconds from now
    now = time.monotonic()
    assert ids(p.scheduler.due(now + 10.5)) == list(range(1, 11))
    assert ids(p.scheduler.due(now + 10.5)) == []  # handed out once
    assert ids(p.scheduler.due(now + 20.5)) == list(range(11, 21))
