"""A worker child answers a chunk with few pipe messages, and the runner still knows exactly
which message a child is on and since when (mailroom.stage.progress)."""

from __future__ import annotations

import pytest
from stage_toy import SPEC, raw

import mailroom.stage.workers as workers
from mailroom.codec import Codec
from mailroom.settings import Settings
from mailroom.stage import CRASH_LOOP, TIMEOUT, Context, Source
from mailroom.stage.workers import ProcessExecutor


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.from_settings(Settings())


def context(codec: Codec, content: bytes, offset: int = 5) -> Context:
    return Context("toy", Source("t.in", 0, offset, b"k", codec.encode_record(raw(7, content)),
                                 1_700_000_000_000))


def test_a_chunk_is_answered_with_a_few_pipe_messages(codec: Codec, monkeypatch) -> None:
    reads = []
    real = workers.load_verdicts
    monkeypatch.setattr(workers, "load_verdicts", lambda data: reads.append(1) or real(data))
    executor = ProcessExecutor(SPEC, Settings(), workers=1)
    try:
        verdicts = executor.run_batch([context(codec, b"m%d" % i, i) for i in range(64)])
    finally:
        executor.close()
    assert [v.kind for v in verdicts if v is not None] == ["ok"] * 64
    # Two chunks of 32: one message each (a few more if the host stalls the child for long).
    # A message per answer, as before, woke the runner 64 times.
    assert len(reads) <= 8, len(reads)


def test_the_budget_is_each_messages_own_while_answers_wait(codec: Codec) -> None:
    # Thirty-two messages of 30 ms in one chunk under a 600 ms budget: none overran its budget,
    # though the chunk's answers come only when it is done, ~960 ms after it was given.
    executor = ProcessExecutor(SPEC, Settings(stage_budget_ms=600), workers=1)
    try:
        executor.run(context(codec, b"warm"))
        verdicts = executor.run_batch([context(codec, b"BRIEF %d" % i, i) for i in range(32)])
    finally:
        executor.close()
    assert [v.kind for v in verdicts if v is not None] == ["ok"] * 32
    assert executor.deaths == 0


def test_a_death_after_unsent_answers_is_charged_to_its_own_message(codec: Codec) -> None:
    # The child dies on the fourth message with three answers kept: those three are done again
    # and answered; only the fourth is charged (twice: a crash loop), nothing else.
    executor = ProcessExecutor(SPEC, Settings(max_attempts=2), workers=1)
    try:
        batch = [context(codec, c, i) for i, c in enumerate(
            [b"a", b"b", b"c", b"DIE", b"d", b"e"])]
        verdicts = executor.run_batch(batch)
    finally:
        executor.close()
    assert [(v.kind, v.reason_code) for v in verdicts if v is not None] == [
        ("ok", ""), ("ok", ""), ("ok", ""), ("dead", CRASH_LOOP), ("ok", ""), ("ok", "")]
    assert executor.deaths == 2


def test_a_hang_after_unsent_answers_times_out_alone(codec: Codec) -> None:
    executor = ProcessExecutor(SPEC, Settings(stage_budget_ms=800), workers=1)
    try:
        batch = [context(codec, c, i) for i, c in enumerate([b"a", b"b", b"HANG", b"c"])]
        verdicts = executor.run_batch(batch)
    finally:
        executor.close()
    assert [(v.kind, v.reason_code) for v in verdicts if v is not None] == [
        ("ok", ""), ("ok", ""), ("dead", TIMEOUT), ("ok", "")]


def test_a_huge_answer_is_read_whole_and_its_buffer_let_go(codec: Codec) -> None:
    # A 12 MB message's answer arrives in many pieces; the runner's buffer grows for it and is
    # let go after it (a worker's pipe must not hold a huge message's size for its whole life).
    huge = b"x" * (12 << 20)
    executor = ProcessExecutor(SPEC, Settings(), workers=1)
    try:
        verdicts = executor.run_batch([context(codec, huge, 1), context(codec, b"small", 2)])
        worker = executor._workers[0]
        assert worker is not None
        kept = len(worker._buffer)
        again = executor.run_batch([context(codec, b"tiny", 3)])
        after = len(worker._buffer)
    finally:
        executor.close()
    [out] = verdicts[0].outputs
    assert codec.decode(out.value)[1]["detail"]["content"] == "X" * (12 << 20)
    assert again[0] is not None and again[0].kind == "ok"
    assert kept < 1 << 20 and after < 1 << 20, (kept, after)


def test_a_child_never_waits_on_its_progress_pipe(codec: Codec) -> None:
    # More messages than the progress pipe holds records (~2,700): the runner reads them as it
    # goes, so the child never waits to write one — it would wait before a message it has not
    # started, and the runner would see the message before it overrun its budget.
    executor = ProcessExecutor(SPEC, Settings(stage_budget_ms=2000), workers=1)
    try:
        answered = []
        for start in range(0, 3200, 128):
            answered += executor.run_batch([context(codec, b"m%d" % i, i)
                                            for i in range(start, start + 128)])
    finally:
        executor.close()
    assert [v.kind for v in answered if v is not None] == ["ok"] * 3200
    assert executor.deaths == 0
