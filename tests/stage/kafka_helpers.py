"""Small helpers for the stage tests: produce to, read back from and inspect the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.settings import Settings


def produce(
    settings: Settings, topic: str, items: list[tuple[str, bytes]], partition: int = 0
) -> None:
    producer = kafka.make_producer(settings)
    try:
        for key, value in items:
            producer.send(
                settings.topic(topic), key=key.encode(), value=value, partition=partition
            )
        producer.flush()
    finally:
        producer.close()


def read(settings: Settings, topic: str, partitions: int = 1) -> list[Any]:
    """Every record now in ``topic`` (all partitions), read without a group."""
    config = kafka.consumer_config(settings, "unused")
    config["group_id"] = None
    consumer = KafkaConsumer(**config)
    try:
        tps = [TopicPartition(settings.topic(topic), p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + 10
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def wait_for(what: Callable[[], Any], timeout: float = 15.0, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = what()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def decoded(codec: Codec, records: list[Any]) -> list[Any]:
    return [codec.decode_any(r.value) for r in records]


def committed(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    admin = kafka.make_admin(settings)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
        return {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()}
    finally:
        admin.close()
