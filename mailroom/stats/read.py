"""Read the volume table from outside the stats process: its changelog topic, latest value per
key (what faust itself restores from). Used by the dashboard and by tests.

The changelog is compacted, but its head is not yet, so a read costs up to a few records per
counted message since the last compaction; a dashboard samples it at most every few seconds.
"""

from __future__ import annotations

import json
import time

from kafka import TopicPartition

from mailroom.kafka import make_consumer
from mailroom.settings import Settings
from mailroom.stats import counter
from mailroom.stats import windows as w
from mailroom.stats.app import STAGE, TABLE


def changelog_topic(settings: Settings) -> str:
    return f"{settings.topic(STAGE)}-{TABLE}-changelog"  # faust's '<app id>-<table>-changelog'


def read_volumes(settings: Settings, timeout_s: float = 10.0) -> dict[str, w.Volume]:
    """Every counter's latest value (dimension key → windows); {} when stats never ran."""
    consumer = make_consumer(settings, group_id=None, client_id="mailroom-stats-reader")  # type: ignore[arg-type]
    try:
        topic = changelog_topic(settings)
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return {}
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        volumes: dict[str, w.Volume] = {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took over {timeout_s} s")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    key = json.loads(record.key)
                    if record.value is None:  # a tombstone: the counter was deleted
                        volumes.pop(key, None)
                    else:
                        volumes[key] = counter.volume_of(json.loads(record.value))
        return volumes
    finally:
        consumer.close()
