"""StageSpec.make_handler: the handler's process makes it once with the runner's Settings,
before any message — also a spawned worker, which must not reload them from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
import setup_toy
from stage_toy import raw

from mailroom.codec import Codec
from mailroom.settings import Settings
from mailroom.stage import Context, Source
from mailroom.stage.budget import InlineExecutor, ProcessExecutor

# Not what the environment says: only the runner's own object can carry it into the worker.
PREFIX = "passed.by.the.runner"


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.from_settings(Settings())


def _context(codec: Codec, uid: int) -> Context:
    value = codec.encode_record(raw(uid, b"hello"))
    return Context("toy", Source("t.in", 0, uid, b"k", value, 1_700_000_000_000))


def test_a_spawned_worker_makes_its_handler_once_with_the_runners_settings(codec: Codec) -> None:
    executor = ProcessExecutor(setup_toy.SPEC, Settings(topic_prefix=PREFIX, stage_budget_ms=5000))
    try:
        for uid in (1, 2):
            verdict = executor.run(_context(codec, uid))
            assert verdict.kind == "ok"
            assert verdict.traces[0].detail == {"prefixes": PREFIX}  # once, not per message
    finally:
        executor.close()


def test_inline_the_handler_is_made_in_the_consumers_process(codec: Codec) -> None:
    setup_toy._made.clear()
    executor = InlineExecutor(setup_toy.SPEC, codec, Settings(topic_prefix=PREFIX))
    assert executor.run(_context(codec, 1)).traces[0].detail == {"prefixes": PREFIX}
    setup_toy._made.clear()


def test_a_worker_does_not_import_the_kernel_from_the_working_directory(
    codec: Codec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A process started in another checkout (a bench's copy of an older commit) must run its
    # workers on the code its own path names, not on what the working directory holds.
    shadow = tmp_path / "mailroom"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('the working directory was imported')\n")
    monkeypatch.chdir(tmp_path)
    executor = ProcessExecutor(setup_toy.SPEC, Settings(topic_prefix=PREFIX, stage_budget_ms=5000))
    try:
        assert executor.run(_context(codec, 1)).kind == "ok"
    finally:
        executor.close()
