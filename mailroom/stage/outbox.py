"""What a unit of the runner sends to the broker — outputs, trace events, dead letters — and the
wait for the broker's acknowledgement (acks=all) that must come before the unit commits.

Every send's future is kept and checked (outputs, trace events, dead letters): the offset past a
record must never be committed (in Kafka, or in persist's PostgreSQL transaction) before what
it produced is on the broker, and a flush alone waits for the producer's batches without saying
whether they failed. The unit's trace events are gathered and sent together at its end
(:mod:`mailroom.tracing`). A unit is acknowledged at once (:meth:`Outbox.acknowledge`) or handed
over to be acknowledged behind the next unit's work (:meth:`Outbox.hand_over`,
:mod:`mailroom.stage.behind`).
"""

from __future__ import annotations

from typing import Any, Protocol

from mailroom.codec import Codec
from mailroom.deadletters import DeadLetterWriter
from mailroom.metrics import ARRIVED_HEADER
from mailroom.settings import Settings
from mailroom.stage.types import Source, Verdict
from mailroom.tracing import Tracer


class OutboxStatus(Protocol):
    records_out: int
    dead_lettered: int


class Outbox:
    def __init__(self, producer: Any, codec: Codec, settings: Settings, stage: str,
                 blobs: Any, status: OutboxStatus) -> None:
        self.producer = producer
        self.settings = settings
        self.stage = stage
        self.status = status
        self.dead = DeadLetterWriter(producer, codec, settings, blobs)
        self.tracer = Tracer(producer, codec, settings, stage)
        self._futures: list[Any] = []

    def send(self, source: Source, verdict: Verdict, attempts: int, arrived_ms: int) -> None:
        """A handled record's trace events, then its outputs (``ok``) or dead letter."""
        for trace in verdict.traces:
            self.tracer.add(
                trace.key, trace.event, trace.detail,
                source=source if trace.from_source else None,
                message_id=trace.message_id, dedupe_key=trace.dedupe_key,
                raw_identity=trace.raw_identity, stage=trace.stage,
            )
        if verdict.kind == "ok":
            # Arrival time travels downstream, so every stage can measure end-to-end latency.
            headers = [(ARRIVED_HEADER, str(arrived_ms).encode())]
            send, sent = self.producer.send, self._futures.append
            for out in verdict.outputs:
                sent(send(self.settings.topic(out.topic), key=out.key, value=out.value,
                          headers=headers))
            self.status.records_out += len(verdict.outputs)
        else:  # dead
            self.dead_letter(source, verdict.reason_code, verdict.reason, attempts)

    def dead_letter(self, source: Source, code: str, reason: str, attempts: int) -> None:
        """The dead letter (with the real attempt count) and its ``dead_lettered`` trace event."""
        self._futures.append(self.dead.send(self.stage, code, reason, source, max(attempts, 1)))
        self.tracer.add(
            source.key_text, "dead_lettered", {"reason_code": code, "reason": reason[:1000]},
            source=source,
        )
        self.status.dead_lettered += 1

    def acknowledge(self) -> None:
        """Wait until the broker has everything sent since the last call (raises KafkaError)."""
        sent = self.hand_over()
        self.flush()
        self.wait(sent)

    def hand_over(self) -> list[Any]:
        """Send the unit's trace events (a record per trace partition); returns the futures of
        everything the unit sent, no longer the outbox's."""
        self._futures += self.tracer.send()
        sent, self._futures = self._futures, []
        return sent

    def flush(self) -> None:
        """Have the producer send what it holds now and wait for it (raises KafkaError)."""
        self.producer.flush(timeout=self.settings.kafka_request_timeout_ms / 1000)

    def wait(self, sent: list[Any]) -> None:
        """Wait for the broker's acknowledgement of each send (raises what one failed with)."""
        timeout = self.settings.kafka_request_timeout_ms / 1000
        for future in sent:
            future.get(timeout=timeout)

    def discard(self) -> None:
        """Forget the sends of a unit given up (they are sent again when it is redone)."""
        self._futures.clear()
        self.tracer.discard()
