"""``mailroom run stats``: run the stats app until SIGTERM/SIGINT, or until it must stop.

faust's own Worker is not used: it installs its own logging and signal handling and calls
``sys.exit``. The app is a mode Service; starting and stopping it on our loop keeps the process
like the other stages (our logging, our /metrics, exit status 0 on a clean stop, 2 when an
unknown schema stopped it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time

from mailroom.codec import Codec
from mailroom.metrics import Batch, Health, StageMetrics, serve
from mailroom.settings import Settings
from mailroom.stats.app import STAGE, StatsApp, build
from mailroom.stats.exporter import VolumeGauges

log = logging.getLogger(__name__)

EXIT_UNKNOWN_SCHEMA = 2


def main(settings: Settings, args: argparse.Namespace | None = None) -> int:
    return asyncio.run(run(settings))


async def run(settings: Settings, stop: asyncio.Event | None = None) -> int:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stats = build(settings, Codec.from_settings(settings))
    metrics = StageMetrics(STAGE)
    gauges = VolumeGauges(metrics.registry, stats.windows, settings.stats_top_senders)
    stale_s = settings.kafka_max_poll_interval_ms / 1000
    server = serve(settings, metrics, Health(
        # The loop below turns every stats_refresh_s on the same event loop as the agents.
        alive=lambda: time.monotonic() - stats.progress.last_turn < stale_s,
        ready=lambda: bool(stats.app.consumer.assignment()) and not stats.failed.is_set(),
    ))
    await stats.app.start()
    log.info("stats: counting %s in windows %s", settings.topic("unwrapped"),
             ",".join(x.name for x in stats.windows))
    try:
        while not (stop.is_set() or stats.failed.is_set()):
            with contextlib.suppress(TimeoutError):  # a timeout: time to refresh the gauges
                await asyncio.wait_for(_either(stop, stats.failed), settings.stats_refresh_s)
            p = stats.progress
            p.last_turn = time.monotonic()
            metrics.batch(Batch(p.records_in, p.counted, p.undecodable))
            gauges.refresh(stats.volumes())
    finally:
        await drain(stats)
        await stats.app.stop()
        if server is not None:
            server.shutdown()
    if stats.failed.is_set():
        log.critical("%s", stats.progress.fatal)
        return EXIT_UNKNOWN_SCHEMA
    return 0


async def drain(stats: StatsApp, timeout_s: float = 10.0) -> None:
    """Let each agent finish the record in hand, then take no more; the app's stop commits
    what was acknowledged, so a clean restart counts nothing twice."""
    stats.draining.set()
    deadline = time.monotonic() + timeout_s
    idle_since = time.monotonic()
    while time.monotonic() < deadline:
        if stats.busy > 0:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > 0.3:  # idle for a moment: nothing in flight
            return
        await asyncio.sleep(0.05)
    log.warning("stats: agents still busy after %.0f s; stopping anyway (at-least-once: the "
                "records in hand are counted again after the restart)", timeout_s)


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    done, pending = await asyncio.wait(
        [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())],
        return_when=asyncio.FIRST_COMPLETED,
    )
    for task in pending:
        task.cancel()
