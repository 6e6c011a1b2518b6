"""The stage runner while PostgreSQL is away (stopped for real, always started again): it keeps
running, says degraded and not ready (``/readyz`` 503), counts no attempt against the records
in flight, and handles them once the database is back."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request

import pytest
from kafka_helpers import decoded, produce, wait_for
from pipeline_testing import read_all
from stage_toy import SPEC, raw

from mailroom.codec import Codec
from mailroom.console.stack import postgres
from mailroom.settings import Settings
from mailroom.stage.run import build_runner, watch

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_the_runner_waits_out_postgresql_and_counts_no_attempt(
    base_settings: Settings, stage_settings: Settings,
) -> None:
    s = stage_settings.replace(metrics_port=_free_port())
    codec = Codec.from_settings(s)
    runner = build_runner(SPEC, s)
    server = watch(runner, s)
    exits: list[int] = []
    thread = threading.Thread(target=lambda: exits.append(runner.run()))
    thread.start()
    try:
        produce(s, "in", [(raw(1, b"a").identity, codec.encode_record(raw(1, b"a")))])
        wait_for(lambda: read_all(s, "out"), timeout=60)
        wait_for(lambda: _readyz(s.metrics_port) == 200, timeout=30)
        try:
            postgres.down(base_settings)
            produce(s, "in", [(raw(2, b"b").identity, codec.encode_record(raw(2, b"b")))])
            wait_for(lambda: runner.status.degraded, timeout=60)
            assert "PostgreSQL" in runner.status.degraded
            assert _readyz(s.metrics_port) == 503
            assert thread.is_alive(), "the stage exited while PostgreSQL was away"
        finally:
            postgres.up(base_settings)  # never leave the shared database stopped
        outs = wait_for(lambda: (r := read_all(s, "out")) and len(r) >= 2 and r, timeout=90)
        assert [e.detail["content"] for e in decoded(codec, outs)] == ["A", "B"]
        wait_for(lambda: not runner.status.degraded, timeout=30)
        assert _readyz(s.metrics_port) == 200
        standing = runner.attempts.standing(s.topic("in"), 0)
        assert standing is not None and standing.attempts == 1, standing  # no death counted
        assert not read_all(s, "dlq")
    finally:
        runner.stop()
        thread.join(60)
        if server is not None:
            server.shutdown()
        runner.producer.close()
        runner.attempts.conn.close()
    assert exits == [0]
