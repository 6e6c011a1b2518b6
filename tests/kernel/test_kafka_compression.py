"""Producers compress their record batches (``kafka_compression``, lz4 unless told otherwise), and
both clients read them: the stages' kafka-python and the stats app's aiokafka (faust)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from mailroom import kafka
from mailroom.errors import ConfigError
from mailroom.settings import Settings

#: Mail-like text: what the pipeline's records mostly are.
VALUE = b"Dear support, the printer on the third floor is on fire again. Regards, Ann\r\n" * 400
COUNT = 30


def test_lz4_unless_told_otherwise() -> None:
    assert Settings().kafka_compression == "lz4"
    assert kafka.producer_config(Settings())["compression_type"] == "lz4"
    assert "compression_type" not in kafka.producer_config(Settings(kafka_compression="none"))
    assert kafka.producer_config(Settings(kafka_compression="GZIP"))["compression_type"] == "gzip"


def test_faust_compresses_as_the_stages_do() -> None:
    assert kafka.faust_settings(Settings())["producer_compression_type"] == "lz4"
    assert kafka.faust_settings(Settings(kafka_compression="none"))[
        "producer_compression_type"] is None


def test_a_codec_one_client_lacks_is_refused() -> None:
    with pytest.raises(ConfigError, match="kafka_compression"):
        Settings().replace(kafka_compression="snappy")


def _stored_bytes(admin: KafkaAdminClient, topic: str) -> int:
    return sum(p["partition_size"] for broker in admin.describe_log_dirs([topic])
               for folder in broker["log_dirs"] for t in folder["topics"] if t["name"] == topic
               for p in t["partitions"])


def _read_with_aiokafka(settings: Settings, topic: str) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer

    async def read() -> list[bytes]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.bootstrap_servers,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        got: list[bytes] = []
        try:
            for _ in range(30):
                batches: dict[Any, Any] = await consumer.getmany(timeout_ms=1000)
                got += [r.value for records in batches.values() for r in records]
                if len(got) >= COUNT:
                    break
        finally:
            await consumer.stop()
        return got

    return asyncio.run(read())


@pytest.mark.integration
@pytest.mark.parametrize("codec", ["lz4", "gzip", "none"])
def test_batches_are_stored_compressed_and_read_by_both_clients(
    isolated_settings: Settings, codec: str
) -> None:
    settings = isolated_settings.replace(kafka_compression=codec)
    topic = settings.topic(f"compression-{codec}")
    admin = KafkaAdminClient(**kafka.admin_config(settings))
    admin.create_topics([NewTopic(topic, 1, 1)])
    producer = KafkaProducer(**kafka.producer_config(settings))
    consumer = KafkaConsumer(topic, **kafka.consumer_config(settings,
                                                            settings.topic(f"cmp-{codec}")))
    try:
        for i in range(COUNT):
            producer.send(topic, key=str(i).encode(), value=VALUE)
        producer.flush()
        sent = COUNT * len(VALUE)
        if codec == "none":
            assert _stored_bytes(admin, topic) >= sent
        else:
            assert _stored_bytes(admin, topic) < sent / 10
        got: list[bytes] = []
        for _ in range(30):
            got += [r.value for records in consumer.poll(timeout_ms=1000).values()
                    for r in records]
            if len(got) >= COUNT:
                break
        assert got == [VALUE] * COUNT
        assert _read_with_aiokafka(settings, topic) == [VALUE] * COUNT
    finally:
        consumer.close()
        producer.close()
        admin.delete_topics([topic])
        admin.close()
