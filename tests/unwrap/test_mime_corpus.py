"""unwrap.mime gives the stdlib's tree for real and generated mail, and takes its fast path on
the shapes the pipeline mostly sees: the benches' forwards, direct mail, replies and large
attachments, and the test fixtures."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from corpus_outcomes import cpython_email_data
from mime_trees import STDLIB, tree_difference
from unwrap_helpers import FIXTURES

from unwrap import mime

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_module(name: str) -> ModuleType:
    # Loaded by path under another name: bench/unwrap.py would shadow the unwrap package.
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _differences(files: list[Path]) -> tuple[dict[str, str], int]:
    """Files whose trees differ (with the first difference), and how many took the fast path."""
    differences, fast = {}, 0
    for path in files:
        data = path.read_bytes()
        tree = mime.parse_fast(data)
        if tree is None:
            tree = mime.parse(data)
        else:
            fast += 1
        difference = tree_difference(tree, STDLIB.parsebytes(data))
        if difference is not None:
            differences[str(path)] = difference
    return differences, fast


def _files(root: Path) -> list[Path]:
    return [path for path in sorted(root.rglob("*")) if path.is_file()]


def test_shared_corpus(corpus_dir: Path) -> None:
    files = _files(corpus_dir)
    differences, fast = _differences(files)
    assert not differences, differences
    # Most of the corpus is well-formed mail; the rest (broken on purpose) goes to the stdlib.
    assert fast > len(files) // 2, (fast, len(files))


def test_cpython_email_data() -> None:
    data = cpython_email_data()
    if data is None:
        pytest.skip("CPython's test/test_email/data is not installed with this interpreter")
    differences, fast = _differences(_files(data))
    assert not differences, differences
    assert fast > 0


# Fixtures that are unusual on purpose: the stdlib parses them (the same tree either way).
UNUSUAL = {"dsn_sloppy.eml"}  # a status field with a space before its colon


def test_unwrap_fixtures_all_take_the_fast_path() -> None:
    mail = [path for path in _files(FIXTURES) if path.suffix == ".eml"]
    differences, fast = _differences(mail)
    assert not differences, differences
    assert fast == len([path for path in mail if path.name not in UNUSUAL])


def test_generated_mail_of_every_kind_takes_the_fast_path() -> None:
    mailgen = _bench_module("mailgen")
    kinds: Counter[str] = Counter()
    for mix in mailgen.MIXES:
        for mail in mailgen.MailMaker(mix, mailgen.DEFAULT_SIZE, "mime").batch(0, 40):
            tree = mime.parse_fast(mail.data)
            assert tree is not None, (mix, mail.kind, mail.message_id)
            difference = tree_difference(tree, STDLIB.parsebytes(mail.data))
            assert difference is None, (mix, mail.kind, difference)
            kinds[mail.kind] += 1
    assert set(kinds) == {"forward", "direct", "reply", "large"}, kinds


def test_unwrap_bench_samples_take_the_fast_path() -> None:
    bench = _bench_module("unwrap")
    for data in (bench.forward(25 * 1024), bench.plain(5 * 1024)):
        tree = mime.parse_fast(data)
        assert tree is not None
        difference = tree_difference(tree, STDLIB.parsebytes(data))
        assert difference is None, difference
