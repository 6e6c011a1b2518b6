"""The stats faust app, built by a function from Settings (no module-level app).

Two agents and one table:

- ``fanout`` reads ``<prefix>.unwrapped`` (raw bytes, decoded with our Codec, not faust's
  serializers) and sends one event per counter the email moves to
  ``<prefix>.stats-volume-events``, keyed by the counter. Re-keying is what makes the table
  right with several processes: every write of one counter comes from one partition, so the
  changelog holds exactly one value per counter (the input is keyed by dedupe key, and two
  partitions writing ``mailbox|x`` would each keep their own value).
- ``count`` adds each event to the ``volume`` table (windows: :mod:`mailroom.stats.windows`);
  faust writes every change to ``<prefix>.stats-volume-changelog`` and restores the table from it
  when a process starts or takes over a partition. Each event carries its email's coordinates
  in ``unwrapped`` and each counter the highest it counted per partition
  (:mod:`mailroom.stats.counter`): faust re-delivers records after a restart, a rebalance or a
  crash, and a re-delivered (or re-sent) event is dropped there instead of counted twice.

Records that are not Email records are never skipped in silence:

- an unknown schema fingerprint stops the app with an error naming it (the writer is newer;
  deploy the newer Mailroom). The record is not acknowledged, so it is read again after the
  upgrade;
- undecodable bytes are logged with their coordinates, counted in
  ``mailroom_dead_letters_total{stage="stats"}`` *and* in the volume itself (the counter
  ``undecodable|``, shown on the dashboard). They are not dead-lettered a second time: route
  reads the same bytes from the same topic and dead-letters them (``undecodable``), and
  ``mailroom dlq retry`` of a stats letter would send them back to route as well.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mailroom.codec import Codec
from mailroom.errors import MalformedRecordError, UnknownSchemaError
from mailroom.kafka import faust_settings
from mailroom.metrics import arrived_ms
from mailroom.records import Email
from mailroom.settings import Settings
from mailroom.stats import counter
from mailroom.stats import windows as w

log = logging.getLogger(__name__)

STAGE = "stats"
TABLE = "volume"


@dataclass
class Progress:
    """What the process did, read by the metrics endpoint and by tests."""

    records_in: int = 0
    undecodable: int = 0
    counted: int = 0
    duplicates: int = 0  # events dropped because their source record was counted already
    last_turn: float = field(default_factory=time.monotonic)
    fatal: str = ""


@dataclass
class StatsApp:
    app: Any  # faust.App
    volume: Any  # faust.Table: dimension key → windows.Volume
    windows: tuple[w.Window, ...]
    progress: Progress
    failed: asyncio.Event  # set when the app must stop (unknown schema)
    draining: asyncio.Event = field(default_factory=asyncio.Event)  # a clean stop began
    busy: int = 0  # records taken and not yet acknowledged, over both agents

    def volumes(self) -> dict[str, w.Volume]:
        """This process's counters (the partitions it is assigned), copied."""
        return {key: volume for key, value in self.volume.items()
                if (volume := counter.volume_of(value))}


def headers_of(headers: Any) -> Iterable[tuple[str, bytes]]:
    """aiokafka gives headers as (name, value) pairs; faust may hand them over as a dict."""
    if isinstance(headers, Mapping):
        return list(headers.items())
    return headers or ()


def build(settings: Settings, codec: Codec) -> StatsApp:
    import faust  # deferred: only this process needs faust

    from mailroom.stats.recovery import OrderedTableManager, check_version

    check_version()
    windows = w.parse_windows(settings.stats_windows)
    app_id = settings.topic(STAGE)  # also the consumer group: '<prefix>.stats', like the stages
    # faust keeps little here with the memory store (its recovery bookkeeping), but wants it.
    data_dir = settings.state_path / "faust" / app_id
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        **faust_settings(settings),
        autodiscover=False,
        # The dashboard and /metrics are our own (mailroom.console.web, metrics.py).
        web_enabled=False,
        store="memory://",  # the changelog topic is the durable state; restored on start
        datadir=str(data_dir),
        processing_guarantee="at_least_once",
        table_standby_replicas=0,  # restore from the changelog on takeover; no hot copies
        # faust's wait for unacknowledged records would wait for ever on a record we refuse
        # (unknown schema); stage.run drains the agents itself before stopping the app.
        stream_wait_empty=False,
        # faust's recovery end cleared the agents' queues after resuming the partitions,
        # dropping records (some for good): recovery.py reorders it.
        TableManager=OrderedTableManager,
    )
    retention = timedelta(days=settings.stream_retention_days)
    unwrapped = app.topic(settings.topic("unwrapped"), key_serializer="raw",
                          value_serializer="raw")
    events = app.topic(f"{app_id}-volume-events", key_serializer="json",
                       value_serializer="json", partitions=settings.topic_partitions,
                       replicas=settings.topic_replication_factor, internal=True,
                       retention=retention)
    # JSON both ways: the dashboard reads the changelog with kafka-python (mailroom.stats.read).
    volume = app.Table(TABLE, default=dict,
                       schema=faust.Schema(key_serializer="json", value_serializer="json"),
                       partitions=settings.topic_partitions,
                       help="Messages per tumbling window, per mailbox and sender.")
    stats = StatsApp(app, volume, windows, Progress(), asyncio.Event())
    keep = settings.stats_keep_windows

    # Acknowledgements are ours (noack streams): faust acknowledges an event when the agent's
    # loop ends or is cancelled, even one never processed - a record of an unknown schema would
    # then be committed and lost. Here only what was processed is acknowledged, and faust
    # commits acknowledged offsets only after flushing its producer (events, changelog).
    async def fanout(stream: Any) -> None:
        s = stream.noack()
        async for event in s.events():
            stats.busy += 1
            keys = _keys(stats, codec, event)
            if keys is None:
                await asyncio.Event().wait()  # stopping: this record is never acknowledged
            message = event.message
            at = arrived_ms(headers_of(message.headers), int(message.timestamp * 1000))
            # The source coordinates let count drop an event it has counted (a re-delivery).
            value = {"at": at, "src": [message.partition, message.offset]}
            for key in keys:
                # Wait for the broker: an event lost in a buffer would be a silent miss, and
                # waiting keeps each source partition's events in offset order (counter.py).
                await (await events.send(key=key, value=value))
            stats.progress.records_in += 1
            log.debug("stats: fanout %s[%s]@%s -> %s", message.topic, message.partition,
                      message.offset, keys)
            await _done(stats, s, event)

    async def count(stream: Any) -> None:
        s = stream.noack()
        async for event in s.events():
            stats.busy += 1
            key, src = event.key, event.value.get("src")
            new = counter.apply(volume.get(key), (int(src[0]), int(src[1])) if src else None,
                                int(event.value["at"]), windows, keep)
            if new is None:
                stats.progress.duplicates += 1
                log.debug("stats: %s already counted unwrapped[%s]@%s; dropped", key, *src)
            else:
                volume[key] = new
                stats.progress.counted += 1
                log.debug("stats: %s counted unwrapped[%s]@%s (event %s[%s]@%s)", key,
                          *(src or ("?", "?")), event.message.topic, event.message.partition,
                          event.message.offset)
            await _done(stats, s, event)

    app.agent(unwrapped, name=f"{app_id}.fanout")(fanout)
    app.agent(events, name=f"{app_id}.count")(count)
    return stats


async def _done(stats: StatsApp, stream: Any, event: Any) -> None:
    await stream.ack(event)
    stats.busy -= 1
    if stats.draining.is_set():
        await asyncio.Event().wait()  # a clean stop: take no further record


def _keys(stats: StatsApp, codec: Codec, event: Any) -> list[str] | None:
    """The counters one unwrapped record moves; None when the app must stop."""
    message = event.message
    where = f"{message.topic}[{message.partition}]@{message.offset}"
    try:
        email = codec.decode_record(bytes(event.value), Email)
    except UnknownSchemaError as exc:
        stats.progress.fatal = (
            f"stats: record {where} has schema fingerprint {exc.fingerprint.hex()} that this "
            "Mailroom does not know (a newer writer): stopping; deploy the newer version and "
            "start again - the record is read again then"
        )
        log.critical("%s", stats.progress.fatal)
        stats.failed.set()
        return None
    except MalformedRecordError as exc:
        # Counted and shown, not dead-lettered twice: route dead-letters the same bytes.
        stats.progress.undecodable += 1
        log.error("stats: record %s undecodable, counted as such (route dead-letters it): %s",
                  where, exc)
        return [w.dimension_key(w.UNDECODABLE, "")]
    sender = email.from_address.address if email.from_address else None
    return w.email_keys(email.delivery.mailbox_address, sender)
