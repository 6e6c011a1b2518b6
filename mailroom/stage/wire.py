"""What crosses the pipe between the stage runner and a worker child: plain tuples, pickled.

The runner's records go down as a chunk of :class:`~mailroom.stage.types.Context` and the
:class:`~mailroom.stage.types.Verdict` of each comes back, several in one message
(:mod:`mailroom.stage.workers` says when). Pickled as they are, every one of those frozen
dataclasses (a Context, its Source; a Verdict, each EncodedOutput and Trace) is written as a
class reference and a ``__dict__`` and read back through ``copyreg``: measured on the bench's
realistic mail (``bench/stage_pipe.py``), that was most of what the pipe cost a record beside
the bytes themselves. Here they cross as tuples of their fields — strings, ints, bytes and the
trace details' dicts, which pickle's C code writes and reads without calling back into Python —
and each side makes the dataclasses again from them (a constructor call per object).

Nothing is left out: every field of every object crosses, so the runner acts on exactly what the
handler answered (outputs, trace events, dead-letter reasons) and the handler sees exactly the
record's coordinates, key, value, timestamp, headers and attempt.
"""

from __future__ import annotations

import pickle
from typing import Any

from mailroom.stage.types import Context, EncodedOutput, Source, Trace, Verdict

PROTOCOL = pickle.HIGHEST_PROTOCOL

#: A record on the wire: (stage, topic, partition, offset, key, value, timestamp, headers,
#: attempt). Pickle writes a string repeated in a chunk (the stage, the topic) once.
Row = tuple[str, str, int, int, bytes | None, bytes | None, int,
            tuple[tuple[str, bytes], ...], int]


def dump_chunk(contexts: list[Context], number: int = 0) -> bytes:
    """The pickled chunk for a child; ``number`` tells it from the chunks before (the child
    reports which message of which chunk it is on)."""
    rows = [
        (c.stage, c.source.topic, c.source.partition, c.source.offset, c.source.key, c.source.value,
         c.source.timestamp, c.source.headers, c.attempt)
        for c in contexts
    ]
    return pickle.dumps(("chunk", number, rows), PROTOCOL)


def is_chunk(message: object) -> bool:
    """A chunk of records (not the mailbox changes that also come down the pipe)."""
    return type(message) is tuple and len(message) == 3 and message[0] == "chunk"


def chunk_number(message: tuple[str, int, list[Row]]) -> int:
    return message[1]


def contexts_of(message: tuple[str, int, list[Row]]) -> list[Context]:
    """The Contexts of an unpickled chunk (:func:`dump_chunk`), in its order."""
    return [
        Context(stage, Source(topic, partition, offset, key, value, timestamp, headers), attempt)
        for stage, topic, partition, offset, key, value, timestamp, headers, attempt
        in message[2]
    ]


def verdict_fields(verdict: Verdict) -> tuple[Any, ...]:
    """A verdict as the tuple of its fields that crosses the pipe."""
    return (
        verdict.kind,
        tuple((o.topic, o.key, o.value) for o in verdict.outputs),
        tuple((t.key, t.event, t.detail, t.message_id, t.dedupe_key, t.raw_identity,
               t.from_source, t.stage) for t in verdict.traces),
        verdict.reason_code,
        verdict.reason,
    )


def dump_verdicts(fields: list[tuple[Any, ...]]) -> bytes:
    """The verdicts of consecutive messages (each :func:`verdict_fields`), in one message."""
    return pickle.dumps(fields, PROTOCOL)


def load_verdicts(data: bytes) -> list[Verdict]:
    """The Verdicts :func:`dump_verdicts` wrote, in order."""
    return [_verdict_of(fields) for fields in pickle.loads(data)]


def _verdict_of(fields: tuple[Any, ...]) -> Verdict:
    kind, outputs, traces, reason_code, reason = fields
    return Verdict(
        kind,
        outputs=tuple(EncodedOutput(topic, key, value) for topic, key, value in outputs),
        traces=tuple(_trace(*fields) for fields in traces),
        reason_code=reason_code,
        reason=reason,
    )


def _trace(key: str, event: str, detail: Any, message_id: str | None, dedupe_key: str | None,
           raw_identity: str | None, from_source: bool, stage: str | None) -> Trace:
    return Trace(key, event, detail, message_id, dedupe_key, raw_identity, from_source, stage)
