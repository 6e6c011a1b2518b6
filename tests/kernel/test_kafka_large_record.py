"""A record larger than the consumer's fetch size still comes, whole and in order: the broker
returns a partition's first record batch whatever the limit, so the stages can fetch at the
client's default sizes (cheaper per record) and still read records up to max_record_bytes."""

from __future__ import annotations

import os

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from mailroom import kafka
from mailroom.settings import Settings

pytestmark = pytest.mark.integration  # needs the local stack's broker


def test_a_record_over_the_fetch_size_is_consumed(isolated_settings: Settings) -> None:
    settings = isolated_settings
    topic = settings.topic("large-record-check")
    config = kafka.consumer_config(settings, settings.topic("large-record-group"))
    big = os.urandom(config["max_partition_fetch_bytes"] * 5)
    assert len(big) < settings.max_record_bytes
    admin = KafkaAdminClient(**kafka.admin_config(settings))
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={
        "max.message.bytes": str(settings.max_record_bytes)})])
    producer = KafkaProducer(**kafka.producer_config(settings))
    consumer = KafkaConsumer(topic, **config)
    try:
        for value in (b"before", big, b"after"):
            producer.send(topic, value=value)
        producer.flush()
        got: list[bytes] = []
        for _ in range(30):
            for records in consumer.poll(timeout_ms=1000).values():
                got += [r.value for r in records]
            if len(got) >= 3:
                break
        assert got == [b"before", big, b"after"]
    finally:
        consumer.close()
        producer.close()
        admin.delete_topics([topic])
        admin.close()


def test_a_full_producer_batch_is_accepted(isolated_settings: Settings) -> None:
    """Records of a mail's size, more than one producer batch of them sent before a flush: the
    broker takes every batch (a batch is never larger than the topics' max.message.bytes)."""
    settings = isolated_settings
    topic = settings.topic("full-batch-check")
    producer_config = kafka.producer_config(settings)
    value = os.urandom(27_000)
    count = producer_config["batch_size"] // len(value) + 20  # over one whole batch
    admin = KafkaAdminClient(**kafka.admin_config(settings))
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={
        "max.message.bytes": str(settings.max_record_bytes)})])
    producer = KafkaProducer(**producer_config)
    consumer = KafkaConsumer(topic, **kafka.consumer_config(settings,
                                                            settings.topic("full-batch-group")))
    try:
        futures = [producer.send(topic, key=str(i).encode(), value=value) for i in range(count)]
        producer.flush()
        offsets = [f.get(timeout=30).offset for f in futures]
        assert offsets == list(range(count))
        got = 0
        for _ in range(60):
            got += sum(len(records) for records in consumer.poll(timeout_ms=1000).values())
            if got >= count:
                break
        assert got == count
    finally:
        consumer.close()
        producer.close()
        admin.delete_topics([topic])
        admin.close()
