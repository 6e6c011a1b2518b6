"""What crosses the pipe to a worker child and back (mailroom.stage.wire): every field of the
runner's Contexts and the handler's Verdicts, and no class for pickle to look up and call."""

from __future__ import annotations

import pickle
import pickletools

from mailroom.stage.types import Context, EncodedOutput, Source, Trace, Verdict
from mailroom.stage.wire import (
    contexts_of,
    dump_chunk,
    dump_verdicts,
    is_chunk,
    load_verdicts,
    verdict_fields,
)

CONTEXTS = [
    Context("unwrap", Source("p.raw", 3, 41, b"key-1", b"\xc3\x01" + b"x" * 5000,
                             1_700_000_000_123, (("mailroom-arrived-ms", b"17"),
                                                 ("mailroom-retries", b"[]"))), 1),
    Context("unwrap", Source("p.raw", 3, 42, None, None, 1_700_000_000_124), 3),
]

VERDICTS = [
    Verdict("ok", outputs=(EncodedOutput("unwrapped", b"d-1", b"\xc3\x01value"),
                           EncodedOutput("unwrapped", b"d-2", b"")),
            traces=(Trace("d-1", "unwrapped", {"mailbox": "fm", "original": "1 of 2"},
                          message_id="m@x", dedupe_key="d-1", raw_identity="fm/imap/1"),
                    Trace("d-0", "parked", {}, from_source=False),
                    Trace("d-1", "routed", {"steps": "activity"}, stage="route"))),
    Verdict("dead", traces=(Trace("k", "rejected"),), reason_code="crash",
            reason="Traceback …\nValueError: ünicode"),
    Verdict("retry", reason_code="transient", reason="PostgreSQL away"),
    Verdict("pause", reason_code="unknown_schema", reason="fingerprint 00ff"),
    Verdict("ok"),
]


def test_a_chunk_gives_the_child_the_same_contexts() -> None:
    message = pickle.loads(dump_chunk(CONTEXTS))
    assert is_chunk(message)
    assert contexts_of(message) == CONTEXTS
    assert contexts_of(pickle.loads(dump_chunk([]))) == []


def test_a_verdict_comes_back_whole() -> None:
    assert load_verdicts(dump_verdicts([verdict_fields(v) for v in VERDICTS])) == VERDICTS
    for verdict in VERDICTS:
        [back] = load_verdicts(dump_verdicts([verdict_fields(verdict)]))
        assert back == verdict
        assert all(type(o) is EncodedOutput for o in back.outputs)
        assert all(type(t) is Trace for t in back.traces)


def test_mailbox_changes_are_no_chunk() -> None:
    from mailroom.stage.mailboxcopy import MailboxChanges

    assert not is_chunk(pickle.loads(pickle.dumps(MailboxChanges({}, frozenset()))))


def _globals(data: bytes) -> list[str]:
    return [op.name for op, _arg, _pos in pickletools.genops(data)
            if op.name in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX",
                           "REDUCE", "BUILD")]


def test_no_class_crosses_the_pipe() -> None:
    """The dataclasses pickled as they are cost a class look-up, a ``__reduce_ex__`` and a
    ``__dict__`` each way per object: the wire carries their fields only."""
    assert _globals(pickle.dumps(CONTEXTS, pickle.HIGHEST_PROTOCOL))  # what it replaces
    assert _globals(dump_chunk(CONTEXTS)) == []
    assert _globals(dump_verdicts([verdict_fields(v) for v in VERDICTS])) == []
