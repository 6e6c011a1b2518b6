"""The forwarder cache: re-read when stale, keep the last table while the database is away."""

from __future__ import annotations

import psycopg
import pytest

from mailroom.errors import TransientError
from unwrap.forwarders import ForwarderCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reads_once_per_refresh_interval() -> None:
    reads: list[int] = []

    def load() -> dict[str, dict[str, str]]:
        reads.append(1)
        return {"7": {"alice@corp.example": f"u-{len(reads)}"}}

    clock = Clock()
    cache = ForwarderCache(load, refresh_s=60, clock=clock)
    assert cache.get()["7"]["alice@corp.example"] == "u-1"
    clock.now = 59
    assert cache.get()["7"]["alice@corp.example"] == "u-1" and len(reads) == 1
    clock.now = 61
    assert cache.get()["7"]["alice@corp.example"] == "u-2"


def test_a_failed_refresh_keeps_the_last_table_and_waits_an_interval() -> None:
    answers: list[object] = [{"7": {"a@x.example": "u-a"}}, psycopg.OperationalError("down"),
                             {"7": {}}]

    def load() -> dict[str, dict[str, str]]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    clock = Clock()
    cache = ForwarderCache(load, refresh_s=10, clock=clock)
    first = cache.get()
    clock.now = 11
    assert cache.get() is first  # the database is away: keep deciding with the last table
    clock.now = 15
    assert cache.get() is first and len(answers) == 1  # not retried on every message
    clock.now = 22
    assert cache.get() == {"7": {}}


def test_no_table_yet_is_transient() -> None:
    def load() -> dict[str, dict[str, str]]:
        raise psycopg.OperationalError("down")

    with pytest.raises(TransientError):
        ForwarderCache(load).get()
