"""The snapshot every viewer shares (:class:`~mailroom.console.web.data.memo.Refreshing`): read at
most so often, one read at a time; while it runs the others get the previous value, and only a
viewer with no value at all waits for it; :meth:`invalidate` waits for a read in flight and forgets
it.

Each test holds one read open on an event, so what the other viewers see meanwhile does not
depend on timing; the short joins below only give a wrong implementation the chance to show
itself, a right one is blocked through them."""

from __future__ import annotations

import threading
from collections.abc import Callable

from mailroom.console.web.data.memo import Refreshing

WAIT_S = 60.0  # for what must happen (a generous bound, never reached when it works)
GRACE_S = 0.5  # for what must not happen


class SlowRead:
    """A read that returns ``value`` once released; records that it began."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self) -> int:
        self.started.set()
        assert self.release.wait(WAIT_S)
        return self.value


def in_thread(cache: Refreshing[int], read: Callable[[], int],
              out: list[int]) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.append(cache.get(read)), daemon=True)
    thread.start()
    return thread


def recorded(calls: list[int], value: int) -> Callable[[], int]:
    def read() -> int:
        calls.append(value)
        return value
    return read


def test_others_get_the_previous_value_while_one_refreshes() -> None:
    cache: Refreshing[int] = Refreshing(min_interval_s=0)  # every viewer finds it stale
    assert cache.get(lambda: 1) == 1
    slow, first = SlowRead(2), []
    refresher = in_thread(cache, slow, first)
    assert slow.started.wait(WAIT_S)
    calls: list[int] = []
    others: list[int] = []
    other = in_thread(cache, recorded(calls, 3), others)
    other.join(WAIT_S)  # it must not wait for the read in flight (that is never released yet)
    assert not other.is_alive() and others == [1] and calls == []
    slow.release.set()
    refresher.join(WAIT_S)
    assert first == [2]
    assert cache.get(recorded(calls, 4)) == 4 and calls == [4]  # stale again: read anew


def test_a_fresh_value_is_not_read_again() -> None:
    cache: Refreshing[int] = Refreshing(min_interval_s=3600)
    value = {"n": 1}
    calls: list[int] = []
    assert cache.get(lambda: value["n"]) == 1
    assert cache.get(recorded(calls, 2)) == 1 and calls == []


def test_the_first_viewer_waits_for_the_read_in_flight() -> None:
    cache: Refreshing[int] = Refreshing(min_interval_s=3600)
    slow, first = SlowRead(1), []
    reader = in_thread(cache, slow, first)
    assert slow.started.wait(WAIT_S)
    calls: list[int] = []
    second: list[int] = []
    waiter = in_thread(cache, recorded(calls, 2), second)
    waiter.join(GRACE_S)
    assert waiter.is_alive() and second == []  # nothing to show yet: it waits
    slow.release.set()
    reader.join(WAIT_S)
    waiter.join(WAIT_S)
    assert first == [1] and second == [1] and calls == []  # the read it waited for, not its own


def test_invalidate_waits_for_the_read_in_flight_and_forgets_it() -> None:
    cache: Refreshing[int] = Refreshing(min_interval_s=0)
    assert cache.get(lambda: 1) == 1
    slow, first = SlowRead(2), []
    reader = in_thread(cache, slow, first)
    assert slow.started.wait(WAIT_S)
    invalidator = threading.Thread(target=cache.invalidate, daemon=True)
    invalidator.start()
    invalidator.join(GRACE_S)
    assert invalidator.is_alive()  # the read in flight may predate what made the value wrong
    slow.release.set()
    reader.join(WAIT_S)
    invalidator.join(WAIT_S)
    assert first == [2]
    cache.min_interval_s = 3600  # the read in flight would count as fresh, had it been kept
    calls: list[int] = []
    assert cache.get(recorded(calls, 3)) == 3 and calls == [3]


def test_within_stale_s_the_viewer_who_finds_it_old_does_not_wait_either() -> None:
    cache: Refreshing[int] = Refreshing(min_interval_s=0, stale_s=3600)
    assert cache.get(lambda: 1) == 1  # the first read: waited for, there is nothing yet
    slow, first = SlowRead(2), []
    trigger = in_thread(cache, slow, first)
    trigger.join(WAIT_S)  # it began the read and went on with the value it found
    assert not trigger.is_alive() and first == [1]
    assert slow.started.wait(WAIT_S)
    calls: list[int] = []
    assert cache.get(recorded(calls, 3)) == 1 and calls == []  # one read at a time
    slow.release.set()
    cache.invalidate()  # waits for the read behind the page to end
    assert cache.get(recorded(calls, 4)) == 4 and calls == [4]


def test_past_stale_s_the_viewer_waits_for_a_fresh_read() -> None:
    cache: Refreshing[int] = Refreshing(min_interval_s=0, stale_s=0.001)
    assert cache.get(lambda: 1) == 1
    threading.Event().wait(0.01)  # older than stale_s now (a bound, not a race: only older)
    calls: list[int] = []
    assert cache.get(recorded(calls, 2)) == 2 and calls == [2]


def test_a_read_behind_the_page_that_fails_keeps_the_value() -> None:
    cache: Refreshing[int] = Refreshing(min_interval_s=0, stale_s=3600)
    assert cache.get(lambda: 1) == 1
    done = threading.Event()

    def failing() -> int:
        done.set()
        raise RuntimeError("the topic is away")

    assert cache.get(failing) == 1  # raised to no viewer
    assert done.wait(WAIT_S)
    calls: list[int] = []
    assert cache.get(recorded(calls, 5)) == 1  # the value it had, not the failure
    cache.invalidate()  # waits for any read still behind the page to let go
    assert cache.get(recorded(calls, 6)) == 6
