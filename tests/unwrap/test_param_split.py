"""Header parameters are split as the stdlib splits them (its private helper is the oracle here,
never a dependency of the product)."""

from __future__ import annotations

import random
from email.message import _parseparam  # type: ignore[attr-defined]

import pytest

from unwrap.parse import _split_params

CASES = ['name="a;b.pdf"; size=12', 'A=1;B = 2 ; c', 'x="a\\";b"; y=2', ";;", "",
         'filename*=utf-8\'\'%E2%82%AC.txt; q="; "', 'a="unclosed; b=2', "k = v = w"]


def fuzz() -> list[str]:
    rng = random.Random(3)
    return ["".join(rng.choice('ab=;" \\\t') for _ in range(rng.randrange(0, 20)))
            for _ in range(500)]


@pytest.mark.parametrize("text", CASES + fuzz())
def test_same_split_as_the_stdlib(text: str) -> None:
    assert _split_params(text) == _parseparam(";" + text)[1:]
