"""The toy stage as a real process: crash loops across restarts, SIGTERM, a kill before commit."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka_helpers import committed, decoded, produce, wait_for
from pipeline_testing import read_all, stage_env
from stage_toy import SPEC, raw

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

RUN_TOY = Path(__file__).with_name("run_toy.py")
FIELDS = (
    "topic_prefix", "database_url", "kafka_session_timeout_ms", "kafka_heartbeat_interval_ms",
    "stage_isolation", "max_attempts", "fault_points", "stage_budget_ms",
)


def start(settings: Settings) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUN_TOY)], env=stage_env(settings, FIELDS))


def values(codec: Codec, items: list[tuple[int, bytes]]) -> list[tuple[str, bytes]]:
    return [(raw(uid, c).identity, codec.encode_record(raw(uid, c))) for uid, c in items]


def contents(codec: Codec, settings: Settings) -> list[str]:
    return [e.detail["content"] for e in decoded(codec, read_all(settings, "out"))]


def test_record_that_kills_the_process_is_dead_lettered_unparsed(stage_settings: Settings) -> None:
    s = stage_settings.replace(max_attempts=1)
    codec = Codec.from_settings(s)
    produce(s, "in", values(codec, [(1, b"a"), (2, b"DIE"), (3, b"b")]))
    exits = []
    for _ in range(4):  # one death in the batch, max_attempts deaths alone, then it flows
        proc = start(s)
        try:
            exits.append(proc.wait(timeout=20))
        except subprocess.TimeoutExpired:
            break  # still running: it got past the killer
    assert exits == [3, 3], "one death in the batch, then max_attempts=1 death alone"
    try:
        dead = wait_for(lambda: decoded(codec, read_all(s, "dlq")))
        [letter] = dead
        assert (letter.reason_code, letter.source_offset) == ("crash_loop", 1)
        assert letter.payload == values(codec, [(2, b"DIE")])[0][1]  # unparsed, as it was
        wait_for(lambda: "B" in contents(codec, s))
        assert "A" in contents(codec, s)
        wait_for(lambda: committed(s, SPEC.group_id(s)).get((s.topic("in"), 0)) == 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_sigterm_finishes_commits_and_leaves(stage_settings: Settings) -> None:
    s = stage_settings
    codec = Codec.from_settings(s)
    produce(s, "in", values(codec, [(i, b"m%d" % i) for i in range(20)]), partition=0)
    produce(s, "in", values(codec, [(100 + i, b"n%d" % i) for i in range(20)]), partition=1)
    proc = start(s)
    try:
        wait_for(lambda: len(read_all(s, "out")) >= 40, timeout=20)
    finally:
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert time.monotonic() - began < 5
    offsets = committed(s, SPEC.group_id(s))
    assert offsets == {(s.topic("in"), 0): 20, (s.topic("in"), 1): 20}
    admin = kafka.make_admin(s)
    try:  # it left the group: no member waits out a session timeout
        group = admin.describe_groups([SPEC.group_id(s)])[SPEC.group_id(s)]
        assert not group.get("members")
    finally:
        admin.close()


def test_dead_letter_is_acknowledged_before_the_commit(stage_settings: Settings) -> None:
    # Killed (SIGKILL) after the flush and the dead letter's acknowledgement but before the
    # commit: the dead letter is on the broker while the offset has not moved.
    s = stage_settings.replace(fault_points="toy:after_produce")
    codec = Codec.from_settings(s)
    produce(s, "in", values(codec, [(1, b"REJECT")]))
    proc = start(s)
    assert proc.wait(timeout=20) == -signal.SIGKILL
    [letter] = decoded(codec, read_all(s, "dlq"))
    assert letter.reason_code == "toy_reject"
    assert committed(s, SPEC.group_id(s)).get((s.topic("in"), 0)) in (None, -1, 0)
    # Restarted without the fault: the message comes again (at least once) and is committed.
    proc = start(s.replace(fault_points=""))
    try:
        wait_for(lambda: committed(s, SPEC.group_id(s)).get((s.topic("in"), 0)) == 1)
        assert len(read_all(s, "dlq")) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_kills_from_outside_never_dead_letter_healthy_mail(stage_settings: Settings) -> None:
    # With worker children a record cannot kill the runner: repeated deaths of the runner (a
    # deploy, a node drain, the OOM killer) while a batch is in flight are not the records'.
    s = stage_settings.replace(stage_isolation="process", max_attempts=1)
    codec = Codec.from_settings(s)
    produce(s, "in", values(codec, [(1, b"a"), (2, b"b"), (3, b"c")]))
    for _ in range(3):  # killed each time with the batch's attempts recorded, nothing handled
        assert start(s.replace(fault_points="toy:after_begin")).wait(timeout=60) != 0
    proc = start(s)
    try:
        wait_for(lambda: sorted(contents(codec, s)) == ["A", "B", "C"], timeout=60)
        wait_for(lambda: committed(s, SPEC.group_id(s)).get((s.topic("in"), 0)) == 3)
        assert read_all(s, "dlq") == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_sigterm_does_not_wait_out_a_record_being_retried(stage_settings: Settings) -> None:
    # A transient failure is retried for stage_retry_deadline_ms (60 s here), longer than a
    # usual termination grace period: SIGTERM leaves that record uncommitted for the next owner.
    s = stage_settings.replace(stage_retry_deadline_ms=60_000)
    codec = Codec.from_settings(s)
    produce(s, "in", values(codec, [(1, b"a"), (2, b"TRANSIENT"), (3, b"b")]), partition=0)
    proc = start(s)
    try:
        wait_for(lambda: "A" in contents(codec, s), timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert committed(s, SPEC.group_id(s)).get((s.topic("in"), 0)) == 1
    assert read_all(s, "dlq") == [] and contents(codec, s) == ["A"]
