"""Putting fetched messages on the raw topic, durably, and knowing which ones made it.

The producer is kafka-python's, made by the kernel with acks=all and idempotence; this module
only decides what each record is (bytes inline, or a claim check when the whole record would
pass ``claim_check_bytes``), keys it by the message's own identity and reports, per message,
whether the broker acknowledged it. A trace event per message goes to the trace topic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mailroom.codec import Codec
from mailroom.records.raw import RawMail
from mailroom.settings import Settings
from mailroom.tracing import Tracer

log = logging.getLogger(__name__)

STAGE = "ingest"


class Producer(Protocol):
    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...) -> Any: ...

    def flush(self, timeout: float | None = ...) -> None: ...


#: Stores bytes in the blob store and returns their sha256 hex (content addressed, so storing
#: the same message twice after a crash costs nothing and yields the same reference).
BlobPut = Callable[[bytes], str]


@dataclass(frozen=True)
class Sent:
    raw: RawMail
    ok: bool
    error: str = ""


def claim_check(settings: Settings, codec: Codec, raw: RawMail,
                put: BlobPut) -> tuple[RawMail, bytes]:
    """``raw`` itself, or the same record carrying a blob reference instead of the bytes; with
    its encoded value (a message that fits is encoded once: the value measured is the one
    sent)."""
    assert raw.content is not None
    # The record is bigger than its content, so a large content needs no trial encoding.
    if len(raw.content) <= settings.claim_check_bytes:
        value = codec.encode_record(raw)
        if len(value) <= settings.claim_check_bytes:
            return raw, value
    ref = put(raw.content)
    record = RawMail(**{**raw.to_avro(), "content": None, "blob_ref": ref})
    return record, codec.encode_record(record)


def publish(
    settings: Settings, codec: Codec, producer: Producer, raws: Sequence[RawMail], put: BlobPut,
    *, timeout_s: float = 60.0,
) -> list[Sent]:
    """Send every record, wait for the broker, and say which were acknowledged."""
    raw_topic = settings.topic("raw")
    tracer = Tracer(producer, codec, settings, STAGE)
    pending = []
    for raw in raws:
        record, value = claim_check(settings, codec, raw, put)
        pending.append((record, producer.send(raw_topic, key=raw.identity.encode(), value=value)))
    producer.flush(timeout=timeout_s)
    results: list[Sent] = []
    for record, future in pending:
        try:
            future.get(timeout=timeout_s)
            results.append(Sent(record, True))
        except Exception as exc:  # noqa: BLE001 - every failure just holds the checkpoint back
            log.warning("raw record %s not acknowledged: %s", record.identity, exc)
            results.append(Sent(record, False, f"{type(exc).__name__}: {exc}"))
    # Trace events describe what happened, so they are sent once the outcome is known — and
    # flushed before the caller moves the checkpoint: a crash after the checkpoint would lose
    # them for good (the message is never fetched again), and `mailroom trace` would show the
    # fetch only as the raw record tells it. A trace the broker refuses loses no mail: it holds
    # nothing back, and is said.
    for sent in results:
        raw = sent.raw
        detail = {
            "mailbox": raw.mailbox_address, "folder": raw.folder, "direction": raw.direction,
            "size": str(raw.size), "claim_check": "yes" if raw.blob_ref else "no",
        }
        if not sent.ok:
            detail["error"] = sent.error
        tracer.add(raw.identity, "fetched" if sent.ok else "retried", detail,
                   raw_identity=raw.identity)
    try:
        tracer.send()
        producer.flush(timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - the mail is safe; only its trace may be missing
        log.warning("trace events of %d fetched messages not confirmed: %s", len(results), exc)
    return results
