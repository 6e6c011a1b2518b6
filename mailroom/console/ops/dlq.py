"""Dead letters for operators: list them by stage and reason, show one, send them back.

Dead letters are read from the ``dlq`` topic from its beginning (it keeps them for
``dlq_retention_days``, months); a letter is named by its place there, ``PARTITION:OFFSET``.

Retry sends the original record — its payload, or the bytes its ``blob_ref`` names in the blob
store — back to the topic it came from (``source_topic``, under its ``source_key``, so it lands
in the partition its key chooses) with two headers: ``mailroom-retries`` (the letter's
``retries`` + 1) and ``mailroom-retry-of`` (the letter's coordinates). If it fails again, the
stage's dead-letter writer copies the header into the new letter's ``retries``: the lineage
survives any number of rounds. A ``retried`` trace event says when and from where. A retried
letter stays on the topic (Kafka cannot delete one record); sending one twice is harmless,
because every stage downstream dedupes by natural keys.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.deadletters import RETRIES_HEADER, RETRY_OF_HEADER
from mailroom.errors import ConfigError, MailroomError
from mailroom.records import DeadLetter
from mailroom.settings import Settings
from mailroom.tracing import Tracer

READ_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Letter:
    partition: int
    offset: int
    letter: DeadLetter | None  # None: not a readable dead letter (shown, never retried)
    error: str = ""

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"


def read_letters(settings: Settings, codec: Codec) -> list[Letter]:
    """Every dead letter now on the topic, oldest first per partition (no consumer group)."""
    reader = LetterReader(settings, codec)
    try:
        return reader.read()
    finally:
        reader.close()


class LetterReader:
    """The dead-letter topic, read again and again by one consumer: each :meth:`read` fetches
    only the letters that arrived since the last and keeps the rest. A new consumer per read
    (its broker connections, the metadata it decodes, every letter decoded again) cost the
    dashboard ~0.1 s of CPU every few seconds on a broker with thousands of partitions; a kept
    one asks only where each partition now begins and ends. Letters the topic no longer holds
    (past its retention) drop out of what is kept; a partition that went back (the topic made
    anew) is read again from its beginning. One read at a time (a Kafka consumer is not
    thread-safe); a read that fails closes the consumer, so the next starts afresh."""

    def __init__(self, settings: Settings, codec: Codec) -> None:
        self.settings, self.codec = settings, codec
        self._lock = threading.Lock()
        self._consumer: KafkaConsumer | None = None
        self._kept: dict[TopicPartition, list[Letter]] = {}

    def read(self) -> list[Letter]:
        """Every dead letter now on the topic, oldest first per partition."""
        with self._lock:
            try:
                return self._read()
            except BaseException:
                self._close()
                raise

    def _read(self) -> list[Letter]:
        topic = self.settings.topic("dlq")
        if self._consumer is None:
            config = kafka.consumer_config(self.settings, "unused", client_id="mailroom-dlq")
            config["group_id"] = None
            self._consumer = KafkaConsumer(**config)
        consumer = self._consumer
        # Known metadata once the topic is assigned: no broker round trip.
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not tps:
            raise ConfigError(f"topic {topic} does not exist (mailroom topics create)")
        if set(tps) != set(self._kept):  # the first read, or the topic has new partitions
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            self._kept = {tp: [] for tp in tps}
        begins = consumer.beginning_offsets(tps)
        ends = consumer.end_offsets(tps)
        for tp in tps:
            kept = self._kept[tp]
            if consumer.position(tp) > ends[tp]:  # the topic was made anew: read it again
                kept.clear()
                consumer.seek(tp, begins[tp])
            elif kept and kept[0].offset < begins[tp]:  # past retention: gone from the topic
                self._kept[tp] = [x for x in kept if x.offset >= begins[tp]]
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise MailroomError(f"reading {topic} took over {READ_TIMEOUT_S:g} s")
            for tp, records in consumer.poll(timeout_ms=300).items():
                self._kept[tp].extend(_letter(self.codec, r) for r in records)
        return [x for tp in tps for x in self._kept[tp]]

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        self._consumer, self._kept = None, {}


def _letter(codec: Codec, record: Any) -> Letter:
    try:
        return Letter(record.partition, record.offset,
                      codec.decode_record(record.value, DeadLetter))
    except MailroomError as exc:
        return Letter(record.partition, record.offset, None, str(exc))


def select(letters: list[Letter], *, letter_id: str | None = None, stage: str | None = None,
           reason: str | None = None) -> list[Letter]:
    out = []
    for item in letters:
        if letter_id is not None and item.id != letter_id:
            continue
        d = item.letter
        if d is None:
            continue
        if (stage and d.stage != stage) or (reason and d.reason_code != reason):
            continue
        out.append(item)
    if letter_id is not None and not out:
        raise ConfigError(f"no dead letter {letter_id} (PARTITION:OFFSET, see mailroom dlq list)")
    return out


def counts(letters: list[Letter]) -> Counter[tuple[str, str]]:
    return Counter((x.letter.stage, x.letter.reason_code) if x.letter else ("?", "unreadable")
                   for x in letters)


def summary(codec: Codec, letter: DeadLetter) -> dict[str, str]:
    """What the payload is, in a few fields (never the whole message)."""
    if not sendable(letter):
        return {"payload": "none: nothing was obtained (ingest could not fetch the message; "
                "it is still on its mail server)"}
    if letter.payload is None:
        return {"payload": f"in the blob store, sha256 {letter.blob_ref}"}
    try:
        record = codec.decode_any(letter.payload)
    except MailroomError as exc:
        return {"payload": f"{len(letter.payload)} bytes, not readable: {exc}"}
    out = {"payload": f"{type(record).__name__}, {len(letter.payload)} bytes"}
    for name in ("identity", "dedupe_key", "message_id", "subject", "mailbox_address",
                 "folder", "uid", "fetched_at", "key", "event"):
        value = getattr(record, name, None)
        if value not in (None, ""):
            out[name] = str(value)[:200]
    return out


def sendable(letter: DeadLetter) -> bool:
    """Does the letter carry a record to send back? Not one of a message ingest did not fetch
    (reason ``unfetchable`` or ``too_large``): there is nothing to retry but the mail server."""
    return letter.payload is not None or letter.blob_ref is not None


def payload_bytes(settings: Settings, letter: DeadLetter) -> bytes:
    if letter.payload is not None:
        return letter.payload
    if letter.blob_ref is None:
        raise MailroomError("the dead letter carries neither a payload nor a blob_ref")
    from mailroom.blobs import BlobStore
    from mailroom.db import connect

    with connect(settings, autocommit=True) as conn:
        return bytes(BlobStore(conn).get(letter.blob_ref))


def retry(settings: Settings, codec: Codec, letters: list[Letter]) -> int:
    """Send each letter's record back to its source topic (acks=all); returns how many. A letter
    that carries nothing (:func:`sendable`) is skipped."""
    letters = [x for x in letters if x.letter is not None and sendable(x.letter)]
    producer = kafka.make_producer(settings, client_id="mailroom-dlq")
    tracer = Tracer(producer, codec, settings, "dlq")
    dlq_topic = settings.topic("dlq")
    try:
        futures = []
        for item in letters:
            d = item.letter
            assert d is not None
            headers = [(RETRIES_HEADER, str(d.retries + 1).encode()),
                       (RETRY_OF_HEADER, f"{dlq_topic}/{item.id}".encode())]
            futures.append(producer.send(d.source_topic, key=d.source_key,
                                         value=payload_bytes(settings, d), headers=headers))
            key = (d.source_key or b"").decode("utf-8", "replace")
            tracer.add(key, "retried", {
                "dead_letter": f"{dlq_topic}/{item.id}", "stage": d.stage,
                "reason_code": d.reason_code, "retries": str(d.retries + 1),
                "to": d.source_topic})
        tracer.send()  # the retries' events, a record per trace partition
        for future in futures:
            future.get(timeout=settings.kafka_request_timeout_ms / 1000)
        producer.flush()
    finally:
        producer.close()
    return len(letters)
