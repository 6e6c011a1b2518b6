"""One message through a handler: decode, call, classify, encode — no I/O, no Kafka.

:func:`execute` is what runs in the worker subprocess (or inline): it turns whatever the
handler does — return an Outcome or a Rejection, raise any error — into a :class:`Verdict` the
runner acts on. Decoding and encoding happen here too, so with process isolation the CPU work of
Avro stays off the consumer's process and only bytes cross the pipe.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailroom.codec import Codec
from mailroom.errors import (
    MalformedRecordError,
    PermanentError,
    TransientError,
    UnknownSchemaError,
)
from mailroom.settings import Settings
from mailroom.stage.types import (
    CRASH,
    OUT_OF_MEMORY,
    REJECTED,
    UNDECODABLE,
    Context,
    EncodedOutput,
    Handler,
    Outcome,
    Rejection,
    Verdict,
)

#: Longest traceback summary a crash dead letter carries (the log has the whole one).
TRACEBACK_CHARS = 4000


@dataclass(frozen=True)
class StageSpec:
    """What a stream stage is: its name, what it reads, and how its handler is made.

    ``make_handler(settings)`` is called once, with the runner's Settings, in the process that
    runs the handler — each worker child, or the consumer's own process inline — before the
    first message; what it returns handles every message of that process. Whatever the handler
    needs (its settings, a reference snapshot, a database connection) lives in what it returns:
    no globals, and nothing loaded again from the environment (a worker is a fresh interpreter,
    and the runner's Settings may differ from the environment: tests, ``mailroom run all``).
    With process isolation it is pickled into the worker, so it must be a module-level function,
    a class, or a ``functools.partial`` of one. Keep it cheap and let no passing outage escape
    it: defer what can fail to the first message (as a TransientError there).

    ``input_type`` is the record class of the input topic (``RawMail`` for unwrap); ``None``
    hands the handler the raw ``(schema name, datum)``.

    ``reads_mailboxes``: the handler decides with the mailbox directory. The runner reads it
    (the handler's process never opens a Kafka client) and hands the handler a copy fresh for
    every record it is given, through its ``use_mailboxes`` (:mod:`mailroom.stage.mailboxcopy`).
    """

    name: str
    input_topic: str  # the brief's short name: 'raw', 'unwrapped', ...
    make_handler: Callable[[Settings], Handler]
    input_type: Any = None
    reads_mailboxes: bool = False

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.input_topic,)

    def group_id(self, settings: Settings) -> str:
        return group_id(settings, self.name)


@dataclass(frozen=True)
class BatchSpec:
    """A stage that brings its own batch handler (an executor, :mod:`mailroom.stage.budget`)
    instead of a per-record one — persist, which applies a whole poll batch in one PostgreSQL
    transaction. Only what it reads is declared; the runner does the rest as for every stage.

    ``input_topic`` is the main input, on which end-to-end latency is measured; ``also_reads``
    are further topics of the same consumer group (persist stores every stage's trace events).
    """

    name: str
    input_topic: str
    also_reads: tuple[str, ...] = ()

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.input_topic, *self.also_reads)

    def group_id(self, settings: Settings) -> str:
        return group_id(settings, self.name)


def group_id(settings: Settings, stage: str) -> str:
    """The stage's consumer group: ``mailroom.<stage>`` with the default topic prefix.

    Namespaced like the topics, so a test's (or a second deployment's) prefix gets its own
    groups too and never joins — or rebalances — the real ones.
    """
    return f"{settings.topic_prefix}.{stage}"


def execute(spec: StageSpec, handler: Handler, codec: Codec, context: Context) -> Verdict:
    """Run ``handler`` (made by ``spec.make_handler``) on the record ``context.source`` holds and
    classify what happened."""
    value = context.source.value
    try:
        if value is None:
            raise MalformedRecordError("the record has no value (a tombstone)")
        if spec.input_type is None:
            record: Any = codec.decode(value)
        else:
            record = codec.decode_record(value, spec.input_type)
    except UnknownSchemaError as exc:
        return Verdict("pause", reason_code="unknown_schema", reason=str(exc))
    except MalformedRecordError as exc:
        return Verdict("dead", reason_code=UNDECODABLE, reason=str(exc))

    try:
        answer = handler(record, context)
        if isinstance(answer, Rejection):
            return Verdict(
                "dead", traces=tuple(answer.traces), reason_code=answer.reason_code,
                reason=answer.reason,
            )
        if not isinstance(answer, Outcome):
            raise TypeError(f"handler returned {type(answer).__name__}, not Outcome/Rejection")
        outputs = tuple(
            EncodedOutput(o.topic, o.key.encode("utf-8"),
                          o.encoded if o.encoded is not None else codec.encode_record(o.record))
            for o in answer.outputs
        )
        return Verdict("ok", outputs=outputs, traces=tuple(answer.traces))
    except TransientError as exc:
        return Verdict("retry", reason_code="transient", reason=_describe(exc))
    except UnknownSchemaError as exc:  # e.g. a nested record of a newer writer
        return Verdict("pause", reason_code="unknown_schema", reason=str(exc))
    except PermanentError as exc:  # MalformedRecordError from encoding included
        return Verdict("dead", reason_code=REJECTED, reason=_describe(exc))
    except MemoryError:
        # Past the worker's memory limit (stage_worker_memory_mb): the message, not a bug.
        return Verdict("dead", reason_code=OUT_OF_MEMORY,
                       reason="the message needed more memory than the worker's limit "
                       "(stage_worker_memory_mb)")
    except Exception as exc:  # noqa: BLE001 - a bug must not block the partition
        return Verdict("dead", reason_code=CRASH, reason=crash_summary(exc))


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def crash_summary(exc: BaseException) -> str:
    """The exception and the innermost frames: enough to find the bug from a dead letter."""
    text = "".join(traceback.format_exception(exc, limit=-8)).strip()
    if len(text) > TRACEBACK_CHARS:
        text = "..." + text[-TRACEBACK_CHARS:]
    return text
