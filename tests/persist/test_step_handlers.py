"""Persist knows every step kind and every candidate method: one registry each, no fallthrough."""

from __future__ import annotations

from mailroom.records.candidates import CANDIDATE_TYPES, References, Smart, Token
from mailroom.records.steps import STEP_TYPES
from persist.apply import HANDLERS
from persist.correlate import METHODS


def test_every_step_kind_has_a_handler() -> None:
    assert set(HANDLERS) == set(STEP_TYPES.values())


def test_every_candidate_method_resolves_and_names_its_lock() -> None:
    assert set(METHODS) == set(CANDIDATE_TYPES.values())
    assert METHODS[References].lock(References("p@x")) == "m:p@x"
    assert METHODS[Token].lock(Token("12")) == "t:12"
    assert METHODS[Smart].lock(Smart(value="h")) == ""
    assert {c for c, m in METHODS.items() if m.waits} == {
        CANDIDATE_TYPES["in_reply_to"], References}
