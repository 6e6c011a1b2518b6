"""A stream-stage process left without partitions while its group has one for it joins again
(:mod:`mailroom.groupwatch`, asked by the runner after every poll), says not ready meanwhile
and counts the rejoin; one idle because the group has more members than partitions is left
alone. On the real broker: a partition added to the input topic is seen by the group's leader
only at its next metadata refresh (minutes away), so the idle process sits without partitions
until its watchdog makes the group rebalance (without the watchdog, still none after 90 s)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from kafka.admin import NewPartitions
from kafka_helpers import produce, wait_for
from pipeline_testing import free_port, http_get, own_schema, own_topics, read_all
from stage_toy import SPEC, raw

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.groupwatch import shares
from mailroom.settings import Settings
from mailroom.stage.run import build_runner, watch
from mailroom.stage.runner import StageRunner

pytestmark = pytest.mark.integration

TOPICS = {"in": 1, "out": 1, "trace": 1, "dlq": 1}
REJOIN_AFTER_S = 5


@pytest.fixture
def watched_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    """Own topics (the input with one partition), own schema, a watchdog that looks after
    ``REJOIN_AFTER_S``."""
    with own_schema(
        isolated_settings, f"stagewatch_{unique_name}",
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=2000,
        kafka_unassigned_rejoin_s=REJOIN_AFTER_S,
        stage_isolation="inline",
    ) as settings, own_topics(settings, TOPICS):
        yield settings


def _rejoins(port: int) -> float | None:
    """``mailroom_group_rejoins_total`` as the process's metrics endpoint exports it."""
    for line in http_get(port, "/metrics")[1].splitlines():
        if line.startswith('mailroom_group_rejoins_total{stage="toy"}'):
            return float(line.split()[-1])
    return None


class Process:
    """A stage runner on a thread with its metrics server, as ``mailroom run`` has it."""

    def __init__(self, settings: Settings) -> None:
        self.runner: StageRunner = build_runner(SPEC, settings)
        self.server = watch(self.runner, settings)
        self.exit: list[int] = []
        self.thread = threading.Thread(target=lambda: self.exit.append(self.runner.run()))
        self.thread.start()

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(30)
        if self.server is not None:
            self.server.shutdown()
        self.runner.producer.close()
        self.runner.attempts.conn.close()
        if self.runner.dead.blobs is not None:
            self.runner.dead.blobs.conn.close()


def _partition_counts(settings: Settings) -> list[int]:
    """Each member's partition count, as the broker has it."""
    admin = kafka.make_admin(settings)
    try:
        return sorted(m.partitions for m in shares(admin, SPEC.group_id(settings)))
    finally:
        admin.close()


def test_a_stage_process_without_partitions_joins_again_when_the_group_has_one_for_it(
    watched_settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    s = watched_settings
    codec = Codec.from_settings(s)
    caplog.set_level(logging.WARNING, logger="mailroom.groupwatch")
    topic = s.topic("in")
    started: list[Process] = []
    try:
        started.append(Process(s.replace(metrics_port=free_port())))
        wait_for(lambda: started[0].runner.status.ready, timeout=60)
        started.append(Process(s.replace(metrics_port=free_port())))
        wait_for(lambda: _partition_counts(s) == [0, 1], timeout=60, every=1)
        # Which of the two the leader leaves without a partition is the assignor's choice: the
        # one whose watchdog counts (it does once its member is stable and holds nothing).
        idle = wait_for(lambda: next((p for p in started if p.runner.watchdog.since), None),
                        timeout=30)
        port = idle.runner.settings.metrics_port
        watchdog = idle.runner.watchdog
        first = watchdog.since
        assert first is not None

        # Two members, one partition: idle by design, not ready, and left as it is.
        assert http_get(port, "/readyz")[0] == 503
        # Its clock starts again once it has looked at the group's size.
        wait_for(lambda: (watchdog.since or 0) >= first + REJOIN_AFTER_S, timeout=60)
        assert watchdog.rejoins == 0 and not idle.runner.status.ready
        assert _partition_counts(s) == [0, 1]

        admin = kafka.make_admin(s)
        try:
            admin.create_partitions({topic: NewPartitions(2)})
            wait_for(lambda: len(admin.describe_topics([topic])[0]["partitions"]) == 2,
                     timeout=30)  # every broker's metadata knows it
        finally:
            admin.close()
        items = [(raw(n, b"x").identity, codec.encode_record(raw(n, b"x"))) for n in (1, 2)]
        produce(s, "in", items[:1], partition=0)
        produce(s, "in", items[1:], partition=1)

        # The idle one joins again: the group shares both partitions, each one's mail handled.
        wait_for(lambda: _partition_counts(s) == [1, 1], timeout=90, every=1)
        outs = wait_for(lambda: (r := read_all(s, "out")) and len(r) >= 2 and r, timeout=60)
        assert sorted(r.key for r in outs) == sorted(k.encode() for k, _ in items)
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, timeout=30)
        assert watchdog.rejoins >= 1
        assert _rejoins(port) == watchdog.rejoins
        assert any("joining the group again" in r.getMessage() for r in caplog.records)
    finally:
        for process in started:
            process.stop()
    assert [p.exit for p in started] == [[0], [0]]

