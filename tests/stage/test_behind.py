"""A whole batch acknowledged and committed behind the next batch's work (a pool of workers):
nothing committed before it is acknowledged, nothing left uncommitted when the input goes
idle, a batch whose sends failed done again."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError
from kafka_helpers import committed, decoded, produce, wait_for
from pipeline_testing import read_all
from runner_thread import RunnerThread
from stage_toy import SPEC, raw

from mailroom.codec import Codec
from mailroom.settings import Settings
from mailroom.stage.behind import Behind
from mailroom.stage.run import build_runner

TP = TopicPartition("in", 0)


class _Sent:
    def __init__(self, log: list[str], name: str, fails: bool = False) -> None:
        self.log, self.name, self.fails = log, name, fails

    def get(self, timeout: float | None = None) -> None:
        self.log.append(f"wait {self.name}")
        if self.fails:
            raise KafkaTimeoutError(f"{self.name} was never acknowledged")


class _Outbox:
    """What Behind asks of the outbox: the unit's sends, a flush, the wait for them."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.next: list[Any] = []

    def hand_over(self) -> list[Any]:
        sent, self.next = self.next, []
        return sent

    def flush(self) -> None:
        self.log.append("flush")

    def wait(self, sent: list[Any]) -> None:
        for future in sent:
            future.get()


def _behind(log: list[str]) -> tuple[Behind, _Outbox]:
    outbox = _Outbox(log)
    behind = Behind(outbox,  # type: ignore[arg-type]
                    lambda o: log.append(f"commit {dict(o)[TP]}"),
                    lambda o: log.append(f"commit later {dict(o)[TP]}"),
                    lambda: log.append("fault point"))
    return behind, outbox


def test_a_unit_is_committed_after_its_sends_are_acknowledged_and_in_order() -> None:
    log: list[str] = []
    behind, outbox = _behind(log)
    outbox.next = [_Sent(log, "a")]
    behind.defer({TP: 0}, {TP: 5})
    assert log == [] and behind  # kept: nothing waited for, nothing committed
    outbox.next = [_Sent(log, "b")]
    behind.defer({TP: 5}, {TP: 10})
    assert log == ["wait a", "fault point", "commit later 5"]
    behind.finish()
    assert log[3:] == ["flush", "wait b", "fault point", "commit 10"]
    assert not behind


def test_a_unit_whose_send_failed_is_given_back_uncommitted() -> None:
    log: list[str] = []
    behind, outbox = _behind(log)
    outbox.next = [_Sent(log, "a", fails=True)]
    behind.defer({TP: 0}, {TP: 5})
    outbox.next = [_Sent(log, "b")]
    with pytest.raises(KafkaTimeoutError):
        behind.defer({TP: 5}, {TP: 10})
    assert not any(line.startswith("commit") for line in log)
    # The failed unit is the one kept; given back, its partitions start again at its first.
    assert behind.give_back() == {TP: 0}
    assert not behind and behind.give_back() == {}


# --- the runner, on the real broker ---------------------------------------------------------


def _settings(stage_settings: Settings) -> Settings:
    return stage_settings.replace(stage_isolation="process", stage_workers=1,
                                  stage_max_poll_records=5)


def _items(codec: Codec, n: int) -> list[tuple[str, bytes]]:
    return [(raw(uid, b"m%d" % uid).identity, codec.encode_record(raw(uid, b"m%d" % uid)))
            for uid in range(n)]


def _committed_total(s: Settings) -> int:
    return sum(max(offset or 0, 0) for offset in committed(s, SPEC.group_id(s)).values())


@pytest.mark.integration
def test_batches_kept_behind_are_all_committed_while_the_stage_runs(
        stage_settings: Settings) -> None:
    s = _settings(stage_settings)
    codec = Codec.from_settings(s)
    produce(s, "in", _items(codec, 23))
    runner = build_runner(SPEC, s)
    assert runner.behind is not None  # a pool and offsets in Kafka: the batches overlap
    later: list[Any] = []
    commit_later = runner.commit.commit_later  # type: ignore[attr-defined]
    runner.behind._commit_later = lambda o: (later.append(dict(o)), commit_later(o))
    running = RunnerThread(runner)
    try:
        outs = wait_for(lambda: (r := read_all(s, "out")) and len(r) >= 23 and r, timeout=60)
        # Not stopped: the last batch is committed because nothing more came.
        wait_for(lambda: _committed_total(s) == 23, timeout=30)
        assert not runner.behind
    finally:
        assert running.stop() == 0
    assert sorted(e.detail["content"] for e in decoded(codec, outs)) == sorted(
        f"M{uid}" for uid in range(23))
    # The records were all there at the start: each poll found the next batch at hand, so
    # batches were committed behind the next one's work.
    assert later


@pytest.mark.integration
def test_a_batch_the_broker_never_acknowledged_is_done_again(stage_settings: Settings) -> None:
    s = _settings(stage_settings)
    codec = Codec.from_settings(s)
    items = _items(codec, 12)
    produce(s, "in", items)
    lost_key = items[3][0].encode()
    runner = build_runner(SPEC, s)
    send = runner.producer.send
    lost: list[bytes] = []

    def send_losing_one(topic: str, *args: Any, **kwargs: Any) -> Any:
        if topic == s.topic("out") and kwargs.get("key") == lost_key and not lost:
            lost.append(lost_key)  # never sent, and its future fails
            return _Sent([], "the lost output", fails=True)
        return send(topic, *args, **kwargs)

    runner.producer.send = send_losing_one  # type: ignore[method-assign]
    running = RunnerThread(runner)
    try:
        outs = wait_for(lambda: (r := read_all(s, "out")) and len(
            {o.key for o in r}) >= 12 and r, timeout=60)
        wait_for(lambda: _committed_total(s) == 12, timeout=30)
    finally:
        assert running.stop() == 0
    assert lost  # the failure happened, and the output it lost was sent when done again
    assert {o.key for o in outs} == {key.encode() for key, _ in items}
