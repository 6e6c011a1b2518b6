"""A consumer started while one broker of the three is down learns its topics' partitions and
joins, instead of raising: kafka-python may send the first metadata request to the dead broker
(it was the first bootstrap server, or still in the cached metadata) and raise
``KafkaConnectionError`` where it could ask another. A stage started then — a supervisor
restarting it while a broker is down — exited; ``mailroom.kafka.Consumer`` asks again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kafka.admin import NewTopic

from mailroom import kafka
from mailroom.console.stack import cluster
from mailroom.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

CONSUMERS = 8  # kafka-python asks the dead broker first about every other time


@pytest.fixture
def topic(kafka_cluster: Settings) -> Iterator[str]:
    """A topic of three partitions on all three brokers, created while all of them run (a
    replication factor of 3 with one broker down is refused once the broker is fenced, and the
    admin client itself may ask the dead broker) and deleted after they all run again."""
    name = f"test.start-down.{uuid.uuid4().hex[:8]}"
    admin = kafka.make_admin(kafka_cluster)
    try:
        admin.create_topics([NewTopic(name, 3, 3)])
        yield name
        admin.delete_topics([name])
    finally:
        admin.close()


@pytest.fixture
def broker_down(kafka_cluster: Settings, base_settings: Settings) -> Iterator[int]:
    """Broker 1 — the first bootstrap server — killed for the test, started again after."""
    cluster.kill(base_settings, 1)
    try:
        yield 1
    finally:
        cluster.up(base_settings, cluster.DEFAULT_BROKERS)


def test_consumers_started_with_a_broker_down_know_their_partitions(
    kafka_cluster: Settings, topic: str, broker_down: int,
) -> None:
    for n in range(CONSUMERS):
        consumer = kafka.make_consumer(kafka_cluster, f"{topic}.g{n}", [topic],
                                       client_id=f"start-down-{n}")
        try:
            # From the metadata it has (no request): what it learnt before joining.
            assert consumer._client.cluster.partitions_for_topic(topic) == {0, 1, 2}  # noqa: SLF001
        finally:
            consumer.close()
