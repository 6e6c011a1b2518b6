"""The stage runner on the real broker and database: outputs, dead letters, pause, budgets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka_helpers import committed, decoded, produce, wait_for
from pipeline_testing import read_all
from runner_thread import RunnerThread
from stage_toy import SPEC, raw

from mailroom.codec import Codec
from mailroom.records import DeadLetter
from mailroom.settings import Settings
from mailroom.tracing import events_of

pytestmark = pytest.mark.integration


@pytest.fixture
def codec(stage_settings: Settings) -> Codec:
    return Codec.from_settings(stage_settings)


@pytest.fixture
def start(stage_settings: Settings) -> Iterator:
    started: list[RunnerThread] = []

    def _start(settings: Settings = stage_settings) -> RunnerThread:
        started.append(RunnerThread.of(settings))
        return started[-1]

    yield _start
    for running in started:
        if running.thread.is_alive():
            running.stop()


def values(codec: Codec, items: list[tuple[int, bytes]]) -> list[tuple[str, bytes]]:
    return [(raw(uid, c).identity, codec.encode_record(raw(uid, c))) for uid, c in items]


def test_good_poison_and_unknown_schema(stage_settings: Settings, codec: Codec, start) -> None:
    s = stage_settings
    items = values(codec, [(1, b"a"), (2, b"REJECT"), (3, b"PERMANENT"), (4, b"BUG")])
    items.append(("garbage", b"this is not avro"))
    items += values(codec, [(5, b"FLAKY"), (6, b"b")])
    items.append(("newer", b"\xc3\x01" + b"\xee" * 8 + b"\x00"))  # a writer newer than us
    items += values(codec, [(7, b"c")])
    produce(s, "in", items)
    running = start()

    outs = wait_for(lambda: (r := read_all(s, "out")) and len(r) >= 3 and r)
    assert [e.detail["content"] for e in decoded(codec, outs)] == ["A", "FLAKY", "B"]
    letters = wait_for(lambda: (r := read_all(s, "dlq")) and len(r) >= 4 and r)
    dead = decoded(codec, letters)
    assert all(isinstance(d, DeadLetter) for d in dead)
    assert [(d.reason_code, d.source_offset) for d in dead] == [
        ("toy_reject", 1), ("rejected", 2), ("crash", 3), ("undecodable", 4),
    ]
    assert all(d.stage == "toy" and d.source_topic == s.topic("in") for d in dead)
    assert all(d.source_partition == 0 and d.attempts == 1 for d in dead)
    assert dead[3].payload == b"this is not avro" and dead[3].source_key == b"garbage"
    assert "ZeroDivisionError" in dead[2].reason
    assert [letter.key for letter in letters] == [k.encode() for k, _ in items[1:5]]

    # Paused at the unknown record: nothing at or past it is handled or committed.
    wait_for(lambda: running.runner.status.paused)
    assert "unknown schema fingerprint" in running.runner.status.paused[(s.topic("in"), 0)]
    wait_for(lambda: committed(s, SPEC.group_id(s)).get((s.topic("in"), 0)) == 7)
    assert running.stop() == 0
    assert committed(s, SPEC.group_id(s))[(s.topic("in"), 0)] == 7
    assert len(read_all(s, "out")) == 3

    traces = [e for r in read_all(s, "trace") for e in events_of(codec, r.value)]
    events = [(t.event, t.source_offset) for t in traces]
    assert ("toyed", 0) in events and ("dead_lettered", 4) in events
    assert ("skipped", 1) in events  # the Rejection's own trace event


def test_worker_process_budget_and_death(stage_settings: Settings, codec: Codec, start) -> None:
    s = stage_settings.replace(stage_isolation="process", stage_budget_ms=1500, max_attempts=2)
    produce(s, "in", values(codec, [(1, b"a"), (2, b"HANG"), (3, b"DIE"), (4, b"b")]))
    running = start(s)
    outs = wait_for(lambda: (r := read_all(s, "out")) and len(r) >= 2 and r, timeout=30)
    assert [e.detail["content"] for e in decoded(codec, outs)] == ["A", "B"]
    dead = decoded(codec, read_all(s, "dlq"))
    assert [(d.reason_code, d.source_offset) for d in dead] == [("timeout", 1), ("crash_loop", 2)]
    wait_for(lambda: committed(s, SPEC.group_id(s)).get((s.topic("in"), 0)) == 4)
    assert running.stop() == 0
