"""The trace-event emitter: every stage says what it did with each message, and why.

One :class:`Tracer` per stage process; :meth:`Tracer.emit` sends a ``TraceEvent`` to
``settings.topic("trace")`` keyed by the message's key (the dedupe key, or the raw identity
before unwrap), so ``mailroom trace`` finds every stage's step of one message in one partition.
Emitting is asynchronous; the stage runner flushes the producer before it commits, so a
committed message always has its trace event on the broker (at least once, like the outputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailroom.codec import Codec
from mailroom.records import TraceEvent
from mailroom.settings import Settings
from mailroom.stage.types import Source


class Tracer:
    def __init__(self, producer: Any, codec: Codec, settings: Settings, stage: str) -> None:
        self.producer = producer
        self.codec = codec
        self.stage = stage
        self.topic = settings.topic("trace")

    def emit(
        self,
        key: str,
        event: str,
        detail: Mapping[str, str] | None = None,
        *,
        source: Source | None = None,
        message_id: str | None = None,
        dedupe_key: str | None = None,
        raw_identity: str | None = None,
    ) -> Any:
        """Send one trace event; returns the producer future."""
        record = TraceEvent(
            key=key,
            stage=self.stage,
            event=event,
            message_id=message_id,
            dedupe_key=dedupe_key,
            raw_identity=raw_identity,
            source_topic=source.topic if source else None,
            source_partition=source.partition if source else None,
            source_offset=source.offset if source else None,
            detail=dict(detail or {}),
        )
        return self.producer.send(
            self.topic, key=key.encode("utf-8"), value=self.codec.encode_record(record)
        )
