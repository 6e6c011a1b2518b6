"""kafka-python and faust get the same broker, security, size and timeout settings."""

from __future__ import annotations

import faust
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from mailroom import kafka
from mailroom.errors import ConfigError
from mailroom.settings import Settings

EXTERNAL = Settings(
    kafka_bootstrap="b1.example.com:9093, b2.example.com:9093",
    kafka_security_protocol="SASL_PLAINTEXT",
    kafka_sasl_mechanism="SCRAM-SHA-512",
    kafka_sasl_username="mailroom",
    kafka_sasl_password="s3cret",
    kafka_request_timeout_ms=40_000,
    kafka_session_timeout_ms=12_000,
    kafka_heartbeat_interval_ms=4_000,
    kafka_max_poll_interval_ms=200_000,
    max_record_bytes=16 * 1024 * 1024,
)


@pytest.mark.parametrize("settings", [Settings(), EXTERNAL], ids=["local", "external"])
def test_kafka_python_and_faust_agree(settings: Settings) -> None:
    producer = kafka.producer_config(settings)
    consumer = kafka.consumer_config(settings, "mailroom-unwrap")
    admin = kafka.admin_config(settings)
    app = faust.App("mailroom-test", **kafka.faust_settings(settings))
    conf = app.conf

    servers = [f"{u.host}:{u.port}" for u in conf.broker]
    assert servers == producer["bootstrap_servers"] == consumer["bootstrap_servers"]
    assert servers == admin["bootstrap_servers"] == settings.bootstrap_servers
    protocol = "PLAINTEXT" if conf.broker_credentials is None else (
        conf.broker_credentials.protocol.value
    )
    assert protocol == producer["security_protocol"] == consumer["security_protocol"]
    assert producer["acks"] == "all" and conf.producer_acks == -1
    assert producer["enable_idempotence"] is True
    assert producer["max_request_size"] == conf.producer_max_request_size
    assert producer["max_request_size"] == settings.max_record_bytes
    # kafka-python fetches at its default sizes (a larger record still comes whole: see
    # tests/kernel/test_kafka_large_record.py); faust's fetch holds the largest record.
    assert consumer["max_partition_fetch_bytes"] == kafka.DEFAULT_PARTITION_FETCH_BYTES
    assert conf.consumer_max_fetch_size >= settings.max_record_bytes
    assert consumer["enable_auto_commit"] is False
    assert consumer["auto_offset_reset"] == conf.consumer_auto_offset_reset == "earliest"
    for ms_key, faust_value in [
        ("request_timeout_ms", conf.broker_request_timeout),
        ("session_timeout_ms", conf.broker_session_timeout),
        ("heartbeat_interval_ms", conf.broker_heartbeat_interval),
        ("max_poll_interval_ms", conf.broker_max_poll_interval),
    ]:
        assert consumer[ms_key] == round(faust_value * 1000), ms_key
    assert conf.topic_replication_factor == settings.topic_replication_factor


def test_sasl_credentials_reach_both_clients() -> None:
    producer = kafka.producer_config(EXTERNAL)
    assert producer["sasl_mechanism"] == "SCRAM-SHA-512"
    assert producer["sasl_plain_username"] == "mailroom"
    credentials = kafka.faust_settings(EXTERNAL)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("mailroom", "s3cret")


def test_configs_are_accepted_by_the_client_classes() -> None:
    # Every key must be a real option: the clients raise on unknown keys only at connect time.
    for config, cls in [
        (kafka.producer_config(EXTERNAL), KafkaProducer),
        (kafka.consumer_config(EXTERNAL, "g"), KafkaConsumer),
        (kafka.admin_config(EXTERNAL), KafkaAdminClient),
    ]:
        assert set(config) <= set(cls.DEFAULT_CONFIG), cls.__name__


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
        ({"kafka_security_protocol": "SASL_SSL"}, "kafka_sasl_mechanism"),
        ({"kafka_heartbeat_interval_ms": 5_000}, "third"),
        ({"kafka_session_timeout_ms": 45_000, "kafka_heartbeat_interval_ms": 3_000}, "exceed"),
        ({"max_record_bytes": 1000}, "claim_check_bytes"),
    ],
)
def test_bad_combinations_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        kafka.producer_config(Settings().replace(**changes))


def test_kafka_python_checksums_records_in_c() -> None:
    # Without the crc32c extension kafka-python computes every batch's CRC-32C in pure Python:
    # nearly half of a stage's CPU went there.
    from kafka.record import _crc32c, util

    assert util.calc_crc32c.__defaults__ is not None
    assert util.calc_crc32c.__defaults__[0] is not _crc32c.crc


@pytest.mark.parametrize("settings", [
    Settings(), EXTERNAL, Settings(max_record_bytes=2 * 1024 * 1024),
], ids=["local", "external", "small-records"])
def test_a_producer_batch_fits_every_topic(settings: Settings) -> None:
    # Every topic's max.message.bytes is max_record_bytes (mailroom.topics): a batch larger than
    # that would be refused by the broker whole, records that each fit included.
    batch = kafka.producer_config(settings)["batch_size"]
    assert batch == min(kafka.PRODUCER_BATCH_BYTES, settings.max_record_bytes)
    assert batch > 1024 * 1024 or settings.max_record_bytes <= 1024 * 1024
