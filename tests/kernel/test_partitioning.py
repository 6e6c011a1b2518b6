"""The producers' partitioner puts every key where kafka-python's default partitioner (the Java
client's) puts it, and is the one the product's producers use."""

from __future__ import annotations

import random

import pytest
from kafka.partitioner import DefaultPartitioner

from mailroom import kafka
from mailroom.partitioning import Murmur2Partitioner
from mailroom.settings import Settings


class Metadata:
    """What a partitioner reads of the cluster's metadata: a topic's partitions, the available
    ones (kafka-python's ClusterMetadata answers the same three questions)."""

    def __init__(self, partitions: dict[str, set[int]], down: set[int] = frozenset()) -> None:
        self.partitions, self.down = partitions, down

    def topics(self) -> set[str]:
        return set(self.partitions)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions.get(topic)

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions[topic] - self.down


@pytest.mark.parametrize("count", [1, 2, 3, 6, 12, 50])
def test_every_key_goes_where_kafka_pythons_default_partitioner_sends_it(count: int) -> None:
    rng = random.Random(count)
    cluster = Metadata({"t": set(range(count))})
    ours, theirs = Murmur2Partitioner(), DefaultPartitioner()
    keys = [rng.randbytes(rng.randrange(0, 90)) for _ in range(3000)]
    keys += [b"1/INBOX/1796404024/17", "dédoublonné ✉".encode(), b"\xff" * 7]
    keys += keys[:500]  # a key met again: its hash is kept (mailroom.partitioning)
    assert [ours.partition("t", None, k, None, None, cluster) for k in keys] == \
           [theirs.partition("t", None, k, None, None, cluster) for k in keys]


def test_a_record_without_key_goes_to_an_available_partition() -> None:
    cluster = Metadata({"t": {0, 1, 2, 3}}, down={1, 3})
    got = {Murmur2Partitioner().partition("t", None, None, None, None, cluster)
           for _ in range(200)}
    assert got == {0, 2}


def test_an_unknown_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="not found"):
        Murmur2Partitioner().partition("nope", None, b"k", None, None, Metadata({"t": {0}}))


def test_the_products_producers_partition_with_it() -> None:
    assert isinstance(kafka.producer_config(Settings())["partitioner"], Murmur2Partitioner)
