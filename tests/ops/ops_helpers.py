"""Helpers of the operations tests: the official Kafka tool, transactions, stages started
with the settings these tests change (the rest is shared: :mod:`pipeline_testing`)."""

from __future__ import annotations

import subprocess
import uuid

import pipeline_testing
from kafka import KafkaProducer
from pipeline_testing import REPO

from mailroom import kafka
from mailroom.settings import Settings

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


def stage_env(settings: Settings, **extra: str) -> dict[str, str]:
    return pipeline_testing.stage_env(settings, STAGE_FIELDS, **extra)


def start_stage(settings: Settings, stage: str, **extra: str) -> subprocess.Popen[bytes]:
    return pipeline_testing.start_stage(settings, stage, STAGE_FIELDS, **extra)
