"""Helpers of the operations tests: the official Kafka tool, producing, starting stages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from mailroom import kafka
from mailroom.settings import Settings, env_name

REPO = Path(__file__).resolve().parents[2]
STAGE_FIELDS = ("topic_prefix", "database_url", "kafka_session_timeout_ms",
                "kafka_heartbeat_interval_ms", "topic_partitions", "stage_budget_ms",
                "stage_isolation", "metrics_port")


def describe_group(settings: Settings, group: str) -> dict[tuple[str, int], tuple[str, ...]]:
    """``kafka-consumer-groups --describe``: (topic, partition) → (CURRENT-OFFSET,
    LOG-END-OFFSET, LAG), as the official tool prints them."""
    out = subprocess.run(
        [str(REPO / "deploy/kafka/kafka-tool"), "kafka-consumer-groups", "--bootstrap-server",
         settings.bootstrap_servers[0], "--describe", "--group", group],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    rows: dict[tuple[str, int], tuple[str, ...]] = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0] == group:
            rows[(cols[1], int(cols[2]))] = (cols[3], cols[4], cols[5])
    return rows


def produce_transaction(settings: Settings, topic: str, items: list[tuple[bytes, bytes]],
                        partition: int, timestamp_ms: int | None = None) -> None:
    """One committed Kafka transaction (kafka-python's transactional producer)."""
    config = {**kafka.producer_config(settings), "transactional_id": f"t-{uuid.uuid4().hex}"}
    producer = KafkaProducer(**config)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for key, value in items:
            producer.send(topic, key=key, value=value, partition=partition,
                          timestamp_ms=timestamp_ms)
        producer.commit_transaction()
    finally:
        producer.close()


def produce(settings: Settings, topic: str, items: list[tuple[bytes, bytes]],
            partition: int | None = None, timestamp_ms: int | None = None) -> None:
    producer = kafka.make_producer(settings)
    try:
        for key, value in items:
            producer.send(topic, key=key, value=value, partition=partition,
                          timestamp_ms=timestamp_ms)
        producer.flush()
    finally:
        producer.close()


def wait_for(what: Callable[[], Any], timeout: float = 30.0, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := what()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)
    return result


def stage_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {**os.environ, **{env_name(f): str(getattr(settings, f)) for f in STAGE_FIELDS
                            if hasattr(settings, f)}}
    env.update(extra)
    return env


def start_stage(settings: Settings, stage: str, **extra: str) -> subprocess.Popen[bytes]:
    mailroom = Path(sys.executable).with_name("mailroom")
    return subprocess.Popen([str(mailroom), "run", stage], env=stage_env(settings, **extra),
                            cwd=REPO)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, "SIGTERM: finish, commit, leave, exit 0"


def read_all(settings: Settings, role: str) -> list[Any]:
    """Every record now in a topic (all partitions), read without a group."""
    from kafka import KafkaConsumer, TopicPartition

    config = kafka.consumer_config(settings, "unused")
    config["group_id"] = None
    consumer = KafkaConsumer(**config)
    try:
        topic = settings.topic(role)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
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
