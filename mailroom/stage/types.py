"""The contract between a stream stage's pure handler and the runner that drives it.

A stage is one function ``handler(record, context) -> Outcome | Rejection``: it gets the decoded
input record and read-only facts about where it came from, and answers with what to write —
never by writing. The runner (:mod:`mailroom.stage.runner`) owns every side effect: producing
outputs, trace events and dead letters, committing offsets, retrying, pausing.

Errors a handler raises are a verdict too:

- :class:`~mailroom.errors.PermanentError` → dead letter (reason code ``rejected``, the message
  text as the reason);
- :class:`~mailroom.errors.TransientError` → retried with backoff until
  ``stage_retry_deadline_ms``, then dead letter ``retry_exhausted``;
- :class:`~mailroom.errors.UnknownSchemaError` → the stage pauses (the record is not poison);
- any other exception is a bug → dead letter ``crash`` with a traceback summary, so a bug never
  blocks a partition.

Everything here is picklable on purpose: with ``stage_isolation=process`` handler results cross
a pipe from the worker subprocess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: Reason codes the runner itself gives dead letters; stages add their own via Rejection.
UNDECODABLE = "undecodable"  # the value is not a readable Avro single-object record
REJECTED = "rejected"  # the handler raised PermanentError
RETRY_EXHAUSTED = "retry_exhausted"  # TransientError past the retry deadline
CRASH = "crash"  # the handler raised an unexpected exception (a bug)
OUT_OF_MEMORY = "out_of_memory"  # the handler passed the worker's memory limit on this message
TIMEOUT = "timeout"  # the handler overran its time budget and was killed
CRASH_LOOP = "crash_loop"  # the record killed the process max_attempts times; sent unparsed


@dataclass(frozen=True)
class Source:
    """Where a consumed record came from: everything needed to find or replay it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # ms since the epoch (the record's CreateTime or LogAppendTime)
    # Kafka headers; ``mailroom-retries`` carries a retried dead letter's lineage (dlq retry).
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, record: Any) -> Source:
        """The source of a record as the consumer's ``poll()`` returns it."""
        return cls(record.topic, record.partition, record.offset, record.key, record.value,
                   record.timestamp, tuple(record.headers or ()))

    @property
    def key_text(self) -> str:
        return self.key.decode("utf-8", "replace") if self.key is not None else ""

    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


@dataclass(frozen=True)
class Context:
    """Read-only facts a handler may use. No clients, no clock: handlers stay pure."""

    stage: str
    source: Source
    attempt: int = 1  # 1 on first delivery; higher after a TransientError retry


@dataclass(frozen=True)
class Output:
    """One record to write. ``topic`` is the brief's short name ('unwrapped'), not the full one."""

    topic: str
    key: str
    record: Any  # a mailroom.records dataclass (anything the codec adapter can encode)
    # The record already encoded by the handler (e.g. to measure it), so it is not encoded
    # twice; must be ``codec.encode_record(record)``.
    encoded: bytes | None = None


@dataclass(frozen=True)
class Trace:
    """One trace event: what the stage did with a message, and why (``mailroom trace``)."""

    key: str
    event: str
    detail: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None
    dedupe_key: str | None = None
    raw_identity: str | None = None
    # False: the event is about another message than the record handled (persist re-evaluating
    # a parked plan when this one landed), so it carries no source coordinates.
    from_source: bool = True
    # The stage that decided it, when not the runner's own: a process that runs two stages'
    # handlers in one step (unwrap's with ``route_in_unwrap``) says which one each event is from.
    stage: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The handler's answer for a message it handled: outputs and trace events (either may be
    empty: a deliberate skip is an Outcome with only a trace event saying why)."""

    outputs: tuple[Output, ...] | list[Output] = ()
    traces: tuple[Trace, ...] | list[Trace] = ()


@dataclass(frozen=True)
class Rejection:
    """The handler's answer for a message that must not go on: it becomes a dead letter."""

    reason_code: str
    reason: str
    traces: tuple[Trace, ...] | list[Trace] = ()


Handler = Callable[[Any, Context], Outcome | Rejection]


@dataclass(frozen=True)
class EncodedOutput:
    """An Output after encoding (what the worker sends back to the runner)."""

    topic: str  # the brief's short name
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Verdict:
    """What became of one message in the handler, as the runner acts on it.

    ``ok``: produce ``outputs`` and ``traces``; ``dead``: dead-letter with ``reason_code`` and
    ``reason`` (and emit ``traces``); ``retry``: TransientError, try again later; ``pause``: the
    stage cannot read this record (unknown schema) and must stop before it.
    """

    kind: Literal["ok", "dead", "retry", "pause"]
    outputs: tuple[EncodedOutput, ...] = ()
    traces: tuple[Trace, ...] = ()
    reason_code: str = ""
    reason: str = ""
