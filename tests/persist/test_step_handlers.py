"""Persist knows every step kind and every candidate method: one registry each, no fallthrough."""

from __future__ import annotations

from mailroom.records.candidates import CANDIDATE_TYPES, References, Smart, Token
from mailroom.records.steps import STEP_TYPES
from persist.apply import HANDLERS
from persist.correlate import METHODS, watch_key


def test_every_step_kind_has_a_handler() -> None:
    assert set(HANDLERS) == set(STEP_TYPES.values())


def test_every_candidate_method_resolves_and_names_its_lock() -> None:
    assert set(METHODS) == set(CANDIDATE_TYPES.values())
    assert METHODS[References].lock(References("p@x")) == "m:p@x"
    assert METHODS[Token].lock(Token("12")) == "t:12"
    # The subject's lock: the email that lands with that subject hash takes it too.
    assert METHODS[Smart].lock(Smart(value="h")) == "s:h"
    # What a waiting candidate watches: a Message-ID as it is, the others by method and value.
    assert watch_key(References("p@x")) == "p@x"
    assert watch_key(Token("12")) == "token 12"
    assert watch_key(Smart(value="h")) == "smart h"
