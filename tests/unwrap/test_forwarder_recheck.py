"""Before a forward is refused or held, the forwarder table is read again if it was read before
the record was written: the forwards an approval releases are written after the approval and
must meet it; records older than the table (a backlog, a flood) cost no read."""

from __future__ import annotations

import psycopg

from unwrap.forwarders import RECHECK_AFTER_FAILURE_S, RECHECK_SKEW_MS, ForwarderCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_record_written_after_the_read_gets_a_fresh_table() -> None:
    reads: list[int] = []

    def load() -> int:
        reads.append(1)
        return len(reads)

    wall, clock = Clock(), Clock()
    wall.now = 1_000.0
    cache = ForwarderCache(load, refresh_s=60, clock=clock, wall=wall)
    assert cache.get() == 1
    read_ms = 1_000_000
    # written long before the read (a backlog): the table read since is good enough
    assert cache.get(written_ms=read_ms - RECHECK_SKEW_MS - 1) == 1 and len(reads) == 1
    # written after the read (a released forward, a forwarder just added): read again
    wall.now = 1_000.5
    assert cache.get(written_ms=read_ms + 400) == 2
    # ... once: the next record of that moment finds the fresh table
    assert cache.get(written_ms=read_ms - RECHECK_SKEW_MS) == 2 and len(reads) == 2


def test_while_the_database_is_down_a_recheck_is_tried_once_a_second_not_per_record() -> None:
    attempts: list[int] = []
    down = False

    def load() -> int:
        attempts.append(1)
        if down:
            raise psycopg.OperationalError("connection refused")
        return len(attempts)

    wall, clock = Clock(), Clock()
    wall.now = 1_000.0
    cache = ForwarderCache(load, refresh_s=60, clock=clock, wall=wall)
    assert cache.get() == 1
    down = True
    live = 1_000_000 + 500  # records written after the last read: each would recheck
    assert cache.get(written_ms=live) == 1 and len(attempts) == 2  # failed: the old table
    for _ in range(50):
        assert cache.get(written_ms=live) == 1
    assert len(attempts) == 2  # not one connection attempt per refused forward
    clock.now = RECHECK_AFTER_FAILURE_S
    down = False
    assert cache.get(written_ms=live) == 3  # a second later: read again, and it works
