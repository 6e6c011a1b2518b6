"""Topics and the codec against the real broker of the local stack."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from kafka import TopicPartition
from kernel_samples import raw_mail

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.records import RawMail
from mailroom.schemas import schemas_dir
from mailroom.settings import Settings
from mailroom.topics import ensure_topics, read_state, topic_specs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def topics(isolated_settings: Settings):
    """This test's own topics, created fresh and deleted afterwards."""
    admin = kafka.make_admin(isolated_settings)
    specs = topic_specs(isolated_settings)
    try:
        yield admin, specs, ensure_topics(admin, specs)
    finally:
        existing = set(admin.list_topics())
        doomed = [s.name for s in specs if s.name in existing]
        if doomed:
            admin.delete_topics(doomed)
        admin.close()


def test_create_then_verify_is_idempotent(topics) -> None:
    admin, specs, first = topics
    assert [r.status for r in first] == ["created"] * len(specs)
    second = ensure_topics(admin, specs)
    assert [r.status for r in second] == ["ok"] * len(specs)
    states = read_state(admin, [s.name for s in specs])
    for spec in specs:
        assert states[spec.name].partitions == spec.partitions
        for key, value in spec.configs.items():
            assert states[spec.name].configs[key] == value, (spec.name, key)


def test_a_changed_setting_is_fixed_and_a_lossy_one_only_reported(
    topics, isolated_settings: Settings
) -> None:
    admin, _specs, _ = topics
    longer = topic_specs(isolated_settings.replace(raw_retention_days=60))
    report = ensure_topics(admin, longer)[0]
    assert report.status == "fixed" and [d.what for d in report.fixed] == ["retention.ms"]
    back = ensure_topics(admin, topic_specs(isolated_settings))[0]  # 60 -> 30 days loses data
    assert back.status == "differs" and back.remaining[0].loses_data
    fewer = ensure_topics(admin, topic_specs(isolated_settings.replace(topic_partitions=3)))
    assert all(r.status == "differs" for r in fewer)
    assert read_state(admin, [fewer[0].spec.name])[fewer[0].spec.name].partitions == 6


def test_a_raw_mail_through_the_real_broker(topics, isolated_settings: Settings) -> None:
    codec = Codec.from_settings(isolated_settings)
    record = raw_mail(os.urandom(2_000_000))  # past Kafka's 1 MB default: the limits must match
    topic = isolated_settings.topic("raw")
    producer = kafka.make_producer(isolated_settings)
    try:
        sent = producer.send(topic, key=record.identity.encode(),
                             value=codec.encode_record(record)).get(timeout=30)
    finally:
        producer.close()
    consumer = kafka.make_consumer(isolated_settings, f"{isolated_settings.topic_prefix}.reader")
    try:
        tp = TopicPartition(topic, sent.partition)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        batch = consumer.poll(timeout_ms=15_000, max_records=1)
    finally:
        consumer.close()
    [message] = batch[tp]
    assert message.key.decode() == record.identity
    assert codec.decode_record(message.value, RawMail) == record


def kafka_topics_tool(settings: Settings) -> list[str]:
    """The official kafka-topics tool from the stack's Maven artifacts."""
    wrapper = REPO / "deploy" / "kafka" / "kafka-tool"
    if wrapper.is_file() and os.access(wrapper, os.X_OK):
        return [str(wrapper), "kafka-topics"]
    java = shutil.which("java")
    assert java, "java is needed for the official Kafka tools"
    libs = settings.state_path / "kafka" / "libs"
    return [java, "-cp", f"{libs}/*", "org.apache.kafka.tools.TopicCommand"]


def test_official_kafka_topics_tool_shows_our_settings(
    topics, isolated_settings: Settings
) -> None:
    _admin, specs, _ = topics
    command = kafka_topics_tool(isolated_settings) + [
        "--bootstrap-server", ",".join(isolated_settings.bootstrap_servers),
        "--describe", "--topic", re.escape(isolated_settings.topic_prefix) + r"\..*",
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    described = {}
    for line in out.splitlines():
        match = re.match(r"Topic: (\S+)\s+TopicId: \S+\s+PartitionCount: (\d+)\s+"
                         r"ReplicationFactor: (\d+)\s+Configs: (\S*)", line)
        if match:
            configs = dict(kv.split("=", 1) for kv in match[4].split(",") if kv)
            described[match[1]] = (int(match[2]), int(match[3]), configs)
    assert set(described) == {s.name for s in specs}
    for spec in specs:
        partitions, replicas, configs = described[spec.name]
        assert (partitions, replicas) == (spec.partitions, spec.replication_factor)
        assert configs == spec.configs, spec.name


def test_schemas_dir_found_from_settings(isolated_settings: Settings) -> None:
    assert (schemas_dir(isolated_settings) / "raw_mail.v1.avsc").is_file()
