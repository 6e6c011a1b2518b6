"""The one place that turns :class:`~mailroom.settings.Settings` into Kafka client settings.

kafka-python (producers, plain consumers, admin) and faust-streaming (agents, tables) must agree
on everything that decides correctness: where the brokers are and how to authenticate, acks=all
so "acknowledged" means replicated, record size limits that match the topics'
``max.message.bytes`` (a record the broker refuses would block its mailbox), and group timeouts
(how fast a dead process's partitions move). Both come from the same settings here, and a test
compares them value by value.

Nothing here connects at import; the ``make_*`` factories connect when called, and the caller
owns (and closes) what they return.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from mailroom import groupjoin
from mailroom.errors import ConfigError
from mailroom.kafkaadmin import Admin
from mailroom.partitioning import Murmur2Partitioner
from mailroom.settings import CHOICES, Settings

log = logging.getLogger(__name__)
#: The SASL mechanisms the clients speak (the allowed values are checked in mailroom.settings).
SASL_MECHANISMS = tuple(m for m in CHOICES["kafka_sasl_mechanism"] if m)

# The clients' own defaults for fetch sizes (faust's are raised to fit max_record_bytes).
DEFAULT_PARTITION_FETCH_BYTES = 1024 * 1024
DEFAULT_FETCH_MAX_BYTES = 50 * 1024 * 1024
#: Producer batching (see producer_config).
PRODUCER_LINGER_MS = 50
# 4 MB rather than 1: a 1 MB batch holds ~38 records of a mail's size (~27 KB), and the
# producer's network thread spent ~40 µs a record on the requests; at 4 MB, ~23
# (bench/kafka_client.py). A batch never exceeds max_record_bytes, which is every topic's
# max.message.bytes (see producer_config).
PRODUCER_BATCH_BYTES = 4 * 1024 * 1024
#: A consumer's first metadata request, tried again after a broker refused it (another is
#: asked next); about as long as a dead broker takes to be fenced.
METADATA_TRIES = 20
METADATA_RETRY_S = 0.5
UNKNOWN_TOPIC_TRIES = 6  # ~3 s for a new topic to reach every broker's metadata
#: How long a poll that failed for a retriable reason waits before it returns (at most its own
#: timeout), so a loop polling through an outage does not spin; and how often it says so.
POLL_FAILED_WAIT_S = 0.5
POLL_FAILED_LOG_S = 30.0


def check(settings: Settings) -> None:
    """Refuse combinations the clients would reject later, or that break group membership.
    (Each choice setting's own values are checked when the Settings is made.)"""
    if settings.kafka_security_protocol.startswith("SASL_"):
        if not settings.kafka_sasl_mechanism:
            raise ConfigError(f"{settings.kafka_security_protocol} needs kafka_sasl_mechanism: "
                              f"one of {', '.join(SASL_MECHANISMS)}")
        if not settings.kafka_sasl_username:
            raise ConfigError("SASL needs kafka_sasl_username and kafka_sasl_password")
    if settings.kafka_heartbeat_interval_ms * 3 > settings.kafka_session_timeout_ms:
        raise ConfigError(
            "kafka_heartbeat_interval_ms must be at most a third of kafka_session_timeout_ms, "
            "or a slow heartbeat alone gets a live process evicted"
        )
    # faust refuses a session timeout above the request timeout (its join would time out first).
    if settings.kafka_session_timeout_ms > settings.kafka_request_timeout_ms:
        raise ConfigError("kafka_session_timeout_ms must not exceed kafka_request_timeout_ms")
    if settings.max_record_bytes < settings.claim_check_bytes:
        raise ConfigError("max_record_bytes must be at least claim_check_bytes")


def partition_fetch_bytes(settings: Settings) -> int:
    """faust's (aiokafka's) per-partition fetch size: a whole record of the largest allowed
    size. (kafka-python's stays at its default: see consumer_config.)"""
    return max(DEFAULT_PARTITION_FETCH_BYTES, settings.max_record_bytes)


def _common(settings: Settings) -> dict[str, Any]:
    check(settings)
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(settings, f"kafka_{name}")
            if value:
                config[name] = value
    if settings.kafka_security_protocol.startswith("SASL_"):
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
        config["sasl_plain_username"] = settings.kafka_sasl_username
        config["sasl_plain_password"] = settings.kafka_sasl_password
    return config


def producer_config(settings: Settings, client_id: str = "mailroom") -> dict[str, Any]:
    return {
        **_common(settings),
        "client_id": client_id,
        # A message counts as sent only once every in-sync replica has it: ingest deletes mail
        # on the server after this acknowledgement.
        "acks": "all",
        # No duplicates from the producer's own retries.
        "enable_idempotence": True,
        # kafka-python measures the whole batch (headers included), so what it accepts fits the
        # topics' max.message.bytes.
        "max_request_size": settings.max_record_bytes,
        # Every stage flushes at the end of its batch, so lingering adds no latency there; it
        # lets one request carry many records instead of one request per record (records over
        # the default 16 KB batch each went alone).
        "linger_ms": PRODUCER_LINGER_MS,
        "batch_size": min(PRODUCER_BATCH_BYTES, settings.max_record_bytes),
        # The default partitioner's partitions, with a murmur2 twice as fast (a few records an
        # email, each partitioned in Python).
        "partitioner": Murmur2Partitioner(),
        **compression(settings),
    }


def compression(settings: Settings) -> dict[str, Any]:
    """kafka-python's compression_type for the setting (absent: none)."""
    if settings.kafka_compression == "none":
        return {}
    return {"compression_type": settings.kafka_compression}


def consumer_config(
    settings: Settings, group_id: str, client_id: str = "mailroom"
) -> dict[str, Any]:
    return {
        **_common(settings),
        "client_id": client_id,
        "group_id": group_id,
        # Offsets are committed by the stage after its output is durable, never on a timer.
        "enable_auto_commit": False,
        # A new group starts from the oldest record: nothing already in a topic is skipped.
        "auto_offset_reset": "earliest",
        # Records of aborted transactions (should any producer use them) are never processed.
        "isolation_level": "read_committed",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "max_poll_interval_ms": settings.kafka_max_poll_interval_ms,
        # The client's own fetch sizes, even though a record may be larger (max_record_bytes):
        # a broker returns the first record batch of a partition whole whatever the limit
        # (KIP-74), so nothing gets stuck. Raised to max_record_bytes, every fetch carried up to
        # 8 MB per partition, and copying those buffers doubled the consumer's CPU per record
        # (156 against 72 µs for 27 KB records, measured).
        "max_partition_fetch_bytes": DEFAULT_PARTITION_FETCH_BYTES,
        "fetch_max_bytes": DEFAULT_FETCH_MAX_BYTES,
    }


def admin_config(settings: Settings, client_id: str = "mailroom-admin") -> dict[str, Any]:
    return {**_common(settings), "client_id": client_id}


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context faust/aiokafka need (kafka-python takes the file names instead)."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile or None)
    return context


def faust_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App(id, **faust_settings(settings))``.

    faust takes seconds where kafka-python takes milliseconds; the values are the same.
    """
    import faust  # deferred: faust is heavy and only the streaming stages need it

    check(settings)
    credentials: Any = None
    context = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        credentials = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,  # present: SASL_SSL; None: SASL_PLAINTEXT
        )
    elif context is not None:
        credentials = faust.SSLCredentials(context)
    return {
        "broker": [f"kafka://{server}" for server in settings.bootstrap_servers],
        "broker_credentials": credentials,
        "broker_request_timeout": settings.kafka_request_timeout_ms / 1000,
        "broker_session_timeout": settings.kafka_session_timeout_ms / 1000,
        "broker_heartbeat_interval": settings.kafka_heartbeat_interval_ms / 1000,
        "broker_max_poll_interval": settings.kafka_max_poll_interval_ms / 1000,
        "producer_acks": -1,  # "all"
        "producer_compression_type": compression(settings).get("compression_type"),
        "producer_max_request_size": settings.max_record_bytes,
        "producer_request_timeout": settings.kafka_request_timeout_ms / 1000,
        "consumer_max_fetch_size": partition_fetch_bytes(settings),
        "consumer_auto_offset_reset": "earliest",
        "topic_replication_factor": settings.topic_replication_factor,
        "topic_partitions": settings.topic_partitions,
    }


def make_producer(settings: Settings, client_id: str = "mailroom") -> KafkaProducer:
    return KafkaProducer(**producer_config(settings, client_id))


class Consumer(KafkaConsumer):
    """A KafkaConsumer that knows its topics' partitions before it joins its group.

    kafka-python lets a new member join as soon as it subscribes, often before its first
    metadata response: the group's leader then assigns nothing ("No partition metadata"),
    rejoins when the metadata comes a moment later, and may never apply the assignment of that
    second join — the process polls on for good with no partitions and no heartbeat, its
    stage stalled (seen most on a fresh multi-broker cluster). Knowing the partitions first,
    the first assignment is the whole one.
    """

    def __init__(self, **configs: Any) -> None:
        super().__init__(**configs)
        groupjoin.mend(self)  # a join that finishes between two polls is applied, not lost
        self.poll_failures = 0  # polls that raised a retriable error (see poll)
        self._poll_failed_logged = 0.0

    def poll(self, timeout_ms: int = 0, max_records: int | None = None,
             update_offsets: bool = True) -> dict[Any, list[Any]]:
        """kafka-python's poll, which returns nothing (after a short wait) where it would raise
        a retriable error.

        With a broker just killed, kafka-python 3 may raise from ``poll`` what a request to
        it failed with: looking up the group's coordinator, it sends the look-up to the dead
        node, takes the refused connection (a KafkaConnectionError, an "invalid metadata"
        error) as a cue to refresh its metadata, and raises when that refresh goes to the dead
        node too (seen: ingest exited 3 s after a broker of three was killed). The next poll
        asks another node (the dead one is backed off), so the caller's loop only has to poll
        again: a stage stays alive through a broker's death instead of exiting. Anything not
        retriable (authorisation, configuration, a fenced member) is raised as before.
        """
        try:
            records: dict[Any, list[Any]] = super().poll(
                timeout_ms=timeout_ms, max_records=max_records, update_offsets=update_offsets)
        except KafkaError as exc:
            if not exc.retriable:
                raise
            self.poll_failures += 1
            now = time.monotonic()
            if now - self._poll_failed_logged >= POLL_FAILED_LOG_S:
                self._poll_failed_logged = now
                log.warning("consumer poll failed (%s: %s; %d so far): polling again, another "
                            "broker", type(exc).__name__, exc, self.poll_failures)
            time.sleep(min(POLL_FAILED_WAIT_S, max(timeout_ms, 0) / 1000))
            return {}
        return records

    def subscribe(self, topics: Iterable[str] = (), pattern: Any = None,
                  listener: Any = None) -> None:
        topics = list(topics or ())
        # partitions_for_topic waits for metadata without a timeout: asked only while a broker
        # answers, so a stage started during an outage still reaches its poll loop and waits
        # there, alive, as it always did.
        servers = self.config["bootstrap_servers"]
        if isinstance(servers, str):
            servers = servers.split(",")
        # Subscribed first: from then on every metadata refresh asks for these topics. Learnt
        # before that, the partitions could be wiped by a refresh of the client's (still empty)
        # topic list answered just after — kafka-python asks for one whenever a connection
        # fails, which a dead broker makes happen all the time.
        super().subscribe(topics, pattern=pattern, listener=listener)
        if topics and any(_reachable(s.strip()) for s in servers):
            for topic in topics:
                self._learn_partitions(topic)

    def _learn_partitions(self, topic: str) -> None:
        # With one broker of several down, kafka-python may send the metadata request to that
        # one and raise instead of asking another: a stage started then exited (seen with
        # brokers killed among stage kills). The dead node is backed off, so the next try asks
        # another; if none answers, the stage goes on to its poll loop and waits there.
        # kafka-python 3 fails the request with whatever its send failed with: a refused
        # connection (KafkaConnectionError), but also a node still in its reconnect backoff or
        # none available (NodeNotReadyError) or a timeout — all marked retriable. Anything else
        # (authorisation, configuration) would fail the same way again, so it is raised.
        # A topic just created may not yet be in the metadata of the broker that answered
        # (brokers learn it from the controller a moment later): an empty answer is asked
        # again a few times, then the member joins anyway — a topic that does not exist at
        # all is the caller's error, reported where it polls.
        unknown = 0
        for _ in range(METADATA_TRIES):
            try:
                if self.partitions_for_topic(topic) or unknown >= UNKNOWN_TOPIC_TRIES:
                    return
                unknown += 1
                log.info("topic %s not yet in the metadata: asking again", topic)
                time.sleep(METADATA_RETRY_S)
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                log.warning("metadata of %s not read (%s): asking another broker", topic, exc)
                time.sleep(METADATA_RETRY_S)


def _reachable(server: str, timeout_s: float = 2.0) -> bool:
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def make_consumer(
    settings: Settings, group_id: str, topics: Iterable[str] = (), client_id: str = "mailroom"
) -> KafkaConsumer:
    """A consumer in ``group_id``, subscribed to ``topics`` (none: the caller assigns or
    subscribes later; either way it learns its topics' partitions before it joins)."""
    consumer = Consumer(**consumer_config(settings, group_id, client_id))
    topics = list(topics)
    if topics:
        consumer.subscribe(topics)
    return consumer


def make_admin(settings: Settings, client_id: str = "mailroom-admin") -> KafkaAdminClient:
    """An admin client whose start-up operations ask another broker when one has died
    (:mod:`mailroom.kafkaadmin`)."""
    return Admin(**admin_config(settings, client_id))
