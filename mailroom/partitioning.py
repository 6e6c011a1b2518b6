"""Which partition a keyed record goes to: Kafka's murmur2, the same answer as the Java client's
default partitioner and kafka-python's, in about half kafka-python's CPU.

Every keyed record the product sends is partitioned here — by the producers
(:class:`Murmur2Partitioner`, in :func:`mailroom.kafka.producer_config`) and by the trace, which
groups a unit's events by the partition their keys fall in (:mod:`mailroom.tracing`) — so a key
lands where faust, other clients and a replay put it.
"""

from __future__ import annotations

import functools
import random
import struct
from typing import Any

from kafka.partitioner import Partitioner

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``, kafka-python's
    ``partitioner.murmur2``), the same value: whole 4-byte words unpacked at once, so about a
    third of kafka-python's per-byte loop — it ran once per trace event, ~10 µs each."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        end = words << 2
        if tail == 3:
            h ^= data[end + 2] << 16
        if tail >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


@functools.lru_cache(maxsize=8192)
def _positive_hash(key: bytes) -> int:
    # One email's records share a key (its Email, its plan, its trace events), each hop sends
    # several: the hash of a key is kept for the next record with it.
    return murmur2(key) & 0x7FFFFFFF


def partition_of(key: bytes, partitions: list[int]) -> int:
    """The partition kafka-python's default partitioner (the Java client's) gives ``key``."""
    return partitions[_positive_hash(key) % len(partitions)]


class Murmur2Partitioner(Partitioner):
    """kafka-python's ``DefaultPartitioner`` with :func:`murmur2`: a key's partition is the
    Java client's; a record without a key goes to a random partition, an available one when
    some are known (as kafka-python's does)."""

    def partition(self, topic: str, key: Any, serialized_key: bytes | None, value: Any,
                  serialized_value: bytes | None, cluster: Any) -> int:
        partitions = cluster.partitions_for_topic(topic)
        if partitions is None:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        if serialized_key is not None:
            return partition_of(serialized_key, sorted(partitions))
        available = list(cluster.available_partitions_for_topic(topic))
        return random.choice(available or sorted(partitions))
