"""Small helpers for the stage tests: produce to the toy stage's topics, inspect the results
(reading back and waiting are shared: :mod:`pipeline_testing`)."""

from __future__ import annotations

import functools
from typing import Any

import pipeline_testing

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.settings import Settings

# The toy stage is quick: its tests give up sooner than the shared default.
wait_for = functools.partial(pipeline_testing.wait_for, timeout=15.0)


def produce(
    settings: Settings, topic: str, items: list[tuple[str, bytes]], partition: int = 0
) -> None:
    """(key, value) records to the topic of role ``topic``, all to one partition."""
    pipeline_testing.produce(settings, settings.topic(topic),
                             [(key.encode(), value) for key, value in items], partition)


def decoded(codec: Codec, records: list[Any]) -> list[Any]:
    return [codec.decode_any(r.value) for r in records]


def committed(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    admin = kafka.make_admin(settings)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
        return {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()}
    finally:
        admin.close()
