"""A plan's lists of strings in its ``params`` map read back as they were written, whatever
their items hold: commas, nothing, or a first item that looks like the start of a JSON list
(a participant address ``[`` once came back as a parse error and the plan as a dead letter)."""

from __future__ import annotations

import pytest

from mailroom.records.params import _join, _split

CASES = [
    (),
    ("a@x.example",),
    ("a@x.example", "b@y.example"),
    ("[",),
    ("[a@x.example", "b@y.example"),
    ('["x"]',),
    ("a,b", "c"),
    ("", "c"),
]


@pytest.mark.parametrize("items", CASES)
def test_lists_read_back_as_written(items: tuple[str, ...]) -> None:
    assert _split(_join(items)) == items


def test_plain_lists_stay_comma_separated() -> None:
    # Older readers, and plans parked long ago, know only this form for ordinary lists.
    assert _join(("a@x.example", "b@y.example")) == "a@x.example,b@y.example"
