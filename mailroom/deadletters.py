"""The dead-letter writer: every stage gives up on a message the same way.

A dead letter carries the stage, a short reason code and a human reason, the attempt count and
the source coordinates (topic, partition, offset, key, timestamp) — everything ``mailroom dlq
retry`` needs to send it back. It goes to ``settings.topic("dlq")`` keyed by the source key, so
the dead letters of one message stay in order in one partition.

The original value rides along when it is at most ``settings.claim_check_bytes``; a larger one
is put into the blob store first (content-addressed, so a retried dead letter stores nothing
twice) and only its sha256 travels — a dead letter never exceeds the topic's size limit.

Acknowledgement before commit: :meth:`DeadLetterWriter.send` returns the producer's future. The
caller (the stage runner) must wait on it — the producer is acks=all — before committing the
offset past the source record; otherwise a crash between the two could lose the message
entirely. :meth:`send_and_wait` does both for callers outside the runner.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from mailroom.blobs import Blobs
from mailroom.codec import Codec
from mailroom.records import DeadLetter
from mailroom.settings import Settings
from mailroom.stage.types import Source

log = logging.getLogger(__name__)


class DeadLetterWriter:
    def __init__(
        self, producer: Any, codec: Codec, settings: Settings, blobs: Blobs | None = None
    ) -> None:
        self.producer = producer
        self.codec = codec
        self.settings = settings
        self.blobs = blobs
        self.topic = settings.topic("dlq")

    def build(
        self, stage: str, reason_code: str, reason: str, source: Source | tuple, attempts: int
    ) -> DeadLetter:
        """The DeadLetter record (stores an oversized payload in the blob store first)."""
        src = source if isinstance(source, Source) else Source(*source)
        payload: bytes | None = src.value
        blob_ref: str | None = None
        if payload is not None and len(payload) > self.settings.claim_check_bytes:
            if self.blobs is None:
                raise RuntimeError(
                    f"dead letter of {src.coordinates()} is {len(payload)} bytes, over the "
                    "claim-check threshold, and no blob store was given to the writer"
                )
            blob_ref = _sha256_of(self.blobs.put(payload))
            payload = None
        return DeadLetter(
            stage=stage,
            reason_code=reason_code,
            reason=reason,
            attempts=attempts,
            source_topic=src.topic,
            source_partition=src.partition,
            source_offset=src.offset,
            source_key=src.key,
            payload=payload,
            blob_ref=blob_ref,
            original_timestamp=(
                datetime.fromtimestamp(src.timestamp / 1000, UTC) if src.timestamp >= 0 else None
            ),
            # Lineage: a message `mailroom dlq retry` sent back carries its count in a header.
            retries=retries_of(src.headers),
        )

    def send(
        self, stage: str, reason_code: str, reason: str, source: Source | tuple, attempts: int
    ) -> Any:
        """Send a dead letter; returns the producer future (wait on it before committing)."""
        letter = self.build(stage, reason_code, reason, source, attempts)
        log.warning(
            "dead letter stage=%s reason_code=%s source=%s/%d@%d attempts=%d reason=%s",
            stage, reason_code, letter.source_topic, letter.source_partition,
            letter.source_offset, attempts, _one_line(reason),
        )
        return self.producer.send(
            self.topic, key=letter.source_key, value=self.codec.encode_record(letter)
        )

    def send_and_wait(
        self, stage: str, reason_code: str, reason: str, source: Source | tuple, attempts: int
    ) -> Any:
        """Send and wait for the broker's acknowledgement; returns the record metadata."""
        future = self.send(stage, reason_code, reason, source, attempts)
        return future.get(timeout=self.settings.kafka_request_timeout_ms / 1000)


RETRIES_HEADER = "mailroom-retries"
RETRY_OF_HEADER = "mailroom-retry-of"


def retries_of(headers: Any) -> int:
    """How often ``mailroom dlq retry`` already sent this message back (0: never)."""
    for name, value in headers or ():
        if name == RETRIES_HEADER:
            try:
                return int(bytes(value).decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                return 0
    return 0


def _sha256_of(ref: Any) -> str:
    # BlobStore.put returns the sha256 hex, or a reference object that carries it.
    if isinstance(ref, str):
        return ref
    for name in ("sha256", "ref", "key"):
        value = getattr(ref, name, None)
        if isinstance(value, str):
            return value
    raise TypeError(f"cannot read a sha256 from blob reference {ref!r}")


def _one_line(text: str, limit: int = 300) -> str:
    line = " | ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."
