"""How the worker pool deals a batch out: chunks that shrink towards the batch's end, so the
children finish together and none waits for another's last long chunk."""

from __future__ import annotations

import heapq

import pytest

from mailroom.stage.workers import MAX_CHUNK, chunk_size


def finish_times(messages: int, workers: int, cost: list[float]) -> list[float]:
    """Deal ``messages`` (message i costs cost[i]) as the pool does: each child, once it has
    answered its chunk, gets the next; returns when each child is done."""
    free = [(0.0, slot) for slot in range(workers)]
    done = [0.0] * workers
    i = 0
    while i < messages:
        at, slot = heapq.heappop(free)
        size = chunk_size(messages - i, workers)
        at += sum(cost[i:i + size])
        i += size
        done[slot] = at
        heapq.heappush(free, (at, slot))
    return done


@pytest.mark.parametrize("workers", [2, 3, 4])
@pytest.mark.parametrize("messages", [1, 7, 64, 200, 500, 2000])
def test_the_children_finish_a_batch_within_a_message_or_two_of_each_other(
        messages: int, workers: int) -> None:
    done = finish_times(messages, workers, [1.0] * messages)
    busy = [t for t in done if t > 0]
    assert max(busy) - min(busy) <= 2 if len(busy) == workers else max(done) <= 2


def test_a_batch_of_500_over_two_children_ends_in_small_chunks() -> None:
    sizes, left = [], 500
    while left:
        sizes.append(chunk_size(left, 2))
        left -= sizes[-1]
    assert sizes[0] == MAX_CHUNK  # a pipe write still carries many messages
    assert sizes[-4:] == [1, 1, 1, 1]
    assert len(sizes) < 60  # not a message a write


def test_a_lone_child_gets_whole_chunks() -> None:
    sizes, left = [], 128
    while left:
        sizes.append(chunk_size(left, 1))
        left -= sizes[-1]
    assert sizes == [MAX_CHUNK] * 4


def test_never_more_than_what_waits_nor_less_than_one() -> None:
    for workers in (1, 2, 8):
        for waiting in range(1, 300):
            assert 1 <= chunk_size(waiting, workers) <= min(waiting, MAX_CHUNK)
