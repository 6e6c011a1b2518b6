"""The end of table recovery (mailroom.stats.recovery), without a broker: faust's
``flow_control.resume()`` clears the agents' queues, so it must come before the stream partitions
are resumed and seeked, never after (records delivered in between were thrown away)."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

import faust

from mailroom.stats.recovery import FAUST_VERSION, OrderedRecovery, OrderedTableManager


def test_the_copied_method_matches_the_installed_faust() -> None:
    assert faust.__version__ == FAUST_VERSION


def test_queues_are_cleared_before_the_stream_partitions_resume_and_seek() -> None:
    calls: list[str] = []
    app: Any = mock.MagicMock()
    app.consumer_generation_id = 7
    app.conf.stream_recovery_delay = 0
    app.conf.broker_request_timeout = 5
    app.on_rebalance_complete.send = mock.AsyncMock()
    app._fetcher.maybe_start = mock.AsyncMock()
    app.flow_control.resume.side_effect = lambda: calls.append("flow_control.resume (clears)")
    consumer = app.consumer
    stream, changelog = mock.Mock(topic="x.unwrapped"), mock.Mock(topic="x.changelog")
    consumer.assignment.return_value = {stream, changelog}
    consumer.resume_partitions.side_effect = lambda tps: calls.append(f"resume {len(tps)}")

    async def seek() -> None:
        calls.append("seek")

    consumer.perform_seek.side_effect = seek
    consumer.resume_flow.side_effect = lambda: calls.append("resume_flow")
    tables: Any = mock.MagicMock()
    tables.values.return_value = []
    recovery = OrderedRecovery(app, tables)
    recovery._is_changelog_tp = lambda tp: tp is changelog  # type: ignore[method-assign]

    async def run() -> None:
        await recovery.on_recovery_completed(generation_id=7)

    asyncio.run(run())
    assert calls == ["flow_control.resume (clears)", "resume 1", "seek", "resume_flow"]
    assert recovery.completed.is_set()


def test_the_app_uses_the_ordered_recovery(tmp_path: Any) -> None:
    from mailroom.codec import Codec
    from mailroom.settings import load
    from mailroom.stats.app import build

    settings = load().replace(state_dir=tmp_path)
    stats = build(settings, Codec.from_settings(settings))
    assert isinstance(stats.app.tables, OrderedTableManager)
    assert isinstance(stats.app.tables.recovery, OrderedRecovery)
