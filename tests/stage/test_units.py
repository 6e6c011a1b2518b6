"""Unit tests of the runner's pure pieces: attempt decisions, verdicts, budgets (no broker)."""

from __future__ import annotations

import time

import pytest
from stage_toy import SPEC, raw

from mailroom.attempts import Standing, next_step
from mailroom.codec import Codec
from mailroom.settings import Settings
from mailroom.stage import CRASH, CRASH_LOOP, REJECTED, TIMEOUT, UNDECODABLE, Context, Source
from mailroom.stage.budget import InlineExecutor
from mailroom.stage.execute import execute
from mailroom.stage.types import OUT_OF_MEMORY
from mailroom.stage.workers import ProcessExecutor

HANDLER = SPEC.make_handler(Settings())


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.from_settings(Settings())


def context(codec: Codec, content: bytes | None, value: bytes | None = None) -> Context:
    if value is None and content is not None:
        value = codec.encode_record(raw(7, content))
    return Context("toy", Source("t.in", 0, 5, b"k", value, 1_700_000_000_000))


# --- attempt decisions ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("offset", "standing", "expected"),
    [
        (10, Standing(1, -1), "batch"),  # first start at this offset: the happy path
        (10, Standing(2, 40), "one"),  # restarted inside a range that was in flight
        (41, Standing(1, 40), "batch"),  # past the suspect range: whole batches again
        (40, Standing(1, 40), "one"),  # the last suspect record is still handled alone
        (10, Standing(3, 40), "one"),  # at the limit (3 = max): still tried
        (10, Standing(4, 40), "crash_loop"),  # over the limit: dead-letter unparsed
    ],
)
def test_next_step(offset: int, standing: Standing, expected: str) -> None:
    assert next_step(offset, standing, max_attempts=3) == expected


# --- verdicts ---------------------------------------------------------------------------------
def test_good_record_gives_encoded_outputs_and_traces(codec: Codec) -> None:
    verdict = execute(SPEC, HANDLER, codec, context(codec, b"hello"))
    assert verdict.kind == "ok"
    [out] = verdict.outputs
    assert out.topic == "out" and out.key == b"mbx-1/INBOX/1/7"
    name, datum = codec.decode(out.value)
    assert name == "trace_event" and datum["detail"] == {"content": "HELLO"}
    assert [t.event for t in verdict.traces] == ["toyed"]


@pytest.mark.parametrize(
    ("content", "kind", "code", "reason_part"),
    [
        (b"REJECT", "dead", "toy_reject", "refuses"),
        (b"PERMANENT", "dead", REJECTED, "permanently bad"),
        (b"BUG", "dead", CRASH, "ZeroDivisionError"),
        (b"TRANSIENT", "retry", "transient", "busy"),
    ],
)
def test_handler_answers_are_classified(
    codec: Codec, content: bytes, kind: str, code: str, reason_part: str
) -> None:
    verdict = execute(SPEC, HANDLER, codec, context(codec, content))
    assert (verdict.kind, verdict.reason_code) == (kind, code)
    assert reason_part in verdict.reason


def test_crash_reason_names_the_failing_line(codec: Codec) -> None:
    verdict = execute(SPEC, HANDLER, codec, context(codec, b"BUG"))
    assert "stage_toy.py" in verdict.reason and "1 / 0" in verdict.reason


@pytest.mark.parametrize("value", [b"not avro at all", b"\xc3\x01" + b"\x00" * 3, None])
def test_unreadable_value_is_undecodable(codec: Codec, value: bytes | None) -> None:
    verdict = execute(SPEC, HANDLER, codec, context(codec, None, value))
    assert (verdict.kind, verdict.reason_code) == ("dead", UNDECODABLE)


def test_unknown_fingerprint_pauses(codec: Codec) -> None:
    value = b"\xc3\x01" + b"\xee" * 8 + b"\x00"
    verdict = execute(SPEC, HANDLER, codec, context(codec, None, value))
    assert verdict.kind == "pause" and "eeeeeeeeeeeeeeee" in verdict.reason


def test_record_of_another_schema_is_undecodable(codec: Codec) -> None:
    from stage_toy import AT

    from mailroom.records import TraceEvent

    value = codec.encode_record(TraceEvent(key="k", stage="s", event="e", at=AT))
    verdict = execute(SPEC, HANDLER, codec, context(codec, None, value))
    assert (verdict.kind, verdict.reason_code) == ("dead", UNDECODABLE)


# --- budgets ----------------------------------------------------------------------------------
def test_inline_budget_stops_a_hang(codec: Codec) -> None:
    executor = InlineExecutor(SPEC, codec, Settings(stage_budget_ms=300))
    began = time.monotonic()
    verdict = executor.run(context(codec, b"HANG"))
    assert (verdict.kind, verdict.reason_code) == ("dead", TIMEOUT)
    assert time.monotonic() - began < 2
    assert executor.run(context(codec, b"fine")).kind == "ok"  # and it goes on


def test_worker_memory_limit_dead_letters_the_message_not_the_worker(codec: Codec) -> None:
    executor = ProcessExecutor(SPEC, Settings(stage_worker_memory_mb=512))
    try:
        verdict = executor.run(context(codec, b"HOG"))
        assert (verdict.kind, verdict.reason_code) == ("dead", OUT_OF_MEMORY)
        assert executor.run(context(codec, b"fine")).kind == "ok"
        assert executor.deaths == 0  # the same worker went on
    finally:
        executor.close()


def test_process_executor_kills_a_hang_and_survives_deaths(codec: Codec) -> None:
    executor = ProcessExecutor(SPEC, Settings(stage_budget_ms=1000, max_attempts=2))
    try:
        assert executor.run(context(codec, b"fine")).kind == "ok"
        began = time.monotonic()
        verdict = executor.run(context(codec, b"HANG"))
        assert (verdict.kind, verdict.reason_code) == ("dead", TIMEOUT)
        assert time.monotonic() - began < 3
        verdict = executor.run(context(codec, b"DIE"))
        assert (verdict.kind, verdict.reason_code) == ("dead", CRASH_LOOP)
        assert "2 times" in verdict.reason and "exit codes 3, 3" in verdict.reason
        assert executor.run(context(codec, b"fine again")).kind == "ok"
    finally:
        executor.close()


def test_worker_pool_answers_a_batch_in_order_through_hangs_and_deaths(codec: Codec) -> None:
    # Two children share a batch in chunks; a hang and a crash in the middle cost only their own
    # message, and every other message is answered in its place.
    executor = ProcessExecutor(SPEC, Settings(stage_budget_ms=1500, max_attempts=2), workers=2)
    contents = [f"m{i}".encode() for i in range(40)]
    contents[7], contents[25] = b"HANG", b"DIE"
    try:
        verdicts = executor.run_batch([context(codec, c) for c in contents])
    finally:
        executor.close()
    assert len(verdicts) == 40 and all(v is not None for v in verdicts)
    assert (verdicts[7].kind, verdicts[7].reason_code) == ("dead", TIMEOUT)
    assert (verdicts[25].kind, verdicts[25].reason_code) == ("dead", CRASH_LOOP)
    for i, verdict in enumerate(verdicts):
        if i not in (7, 25):
            [out] = verdict.outputs
            assert codec.decode(out.value)[1]["detail"] == {"content": f"M{i}"}
    assert executor.deaths == 2


def test_worker_pool_stops_at_the_deadline(codec: Codec) -> None:
    # Past the deadline nothing more starts: the rest is unanswered and comes again later.
    executor = ProcessExecutor(SPEC, Settings(stage_budget_ms=5000), workers=1)
    try:
        executor.run(context(codec, b"warm"))  # the child's start is not part of the deadline
        batch = [context(codec, b"fine"), context(codec, b"HANG"), context(codec, b"later")]
        verdicts = executor.run_batch(batch, deadline=time.monotonic() + 1.0)
    finally:
        executor.close()
    assert verdicts[0] is not None and verdicts[0].kind == "ok"
    assert verdicts[1:] == [None, None]


def test_an_output_encoded_by_its_handler_is_not_encoded_again(codec: Codec) -> None:
    # unwrap encodes each Email to measure it against the claim-check threshold; those bytes
    # are what is sent.
    from mailroom.stage.execute import StageSpec
    from mailroom.stage.types import Outcome, Output

    record = raw(7, b"x")
    encoded = codec.encode_record(record)
    def handler(r: object, c: object) -> Outcome:
        return Outcome(outputs=(Output("out", "k", r, encoded),))

    spec = StageSpec("toy", "in", lambda settings: handler)
    verdict = execute(spec, handler, codec, context(codec, b"x"))
    assert verdict.outputs[0].value is encoded


# --- the shared retry schedule ----------------------------------------------------------------
def test_retries_back_off_until_the_deadline_and_end_at_a_stop() -> None:
    from types import SimpleNamespace

    from mailroom.stage.retry import Retries

    settings = Settings().replace(stage_retry_backoff_ms=1, stage_retry_deadline_ms=40)
    status = SimpleNamespace(stopping=False, retried=0)
    retries = Retries(settings, status)
    waits = 0
    while (step := retries.after_failure("t.in/0@5", "busy")) == "again":
        waits += 1
    assert step == "exhausted" and waits >= 1
    assert status.retried == waits + 1 and retries.tries == waits + 1
    assert retries.exhausted("busy") == f"still failing after {waits + 1} tries over 40 ms: busy"
    status.stopping = True  # SIGTERM: no waiting out the deadline
    assert Retries(settings.replace(stage_retry_deadline_ms=60_000), status).after_failure(
        "t.in/0@5", "busy") == "stopping"
