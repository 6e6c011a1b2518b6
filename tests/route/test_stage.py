"""The stage handler: one plan on the actions topic and one trace event per email."""

from __future__ import annotations

import time

from routebuild import config, email, reference

from mailroom.stage.types import Context, Source
from route import stage


def _context(value: bytes) -> Context:
    return Context("route", Source("t.unwrapped", 0, 7, b"k", value, 0))


def _handler() -> stage.RouteHandler:
    return stage.RouteHandler(None, stage.Snapshot(reference(), config(), time.monotonic()))


def test_handler_emits_the_plan_and_a_trace():
    outcome = _handler()(email(subject="urgent"), _context(b"\xc3\x01email-bytes"))
    (out,) = outcome.outputs
    assert (out.topic, out.key) == ("actions", "m1@customer.example")
    assert out.record.email == b"\xc3\x01email-bytes"
    (trace,) = outcome.traces
    assert trace.event == "routed" and trace.detail["accepted_by"] == "queue:support"
    assert "create_or_update_case" in trace.detail["steps"]


def test_a_skip_is_traced_with_its_reason():
    outcome = _handler()(email(mailbox="11", owner="user:alice"), _context(b""))
    (trace,) = outcome.traces
    assert trace.event == "skipped"
    assert any("not a reply" in v for v in trace.detail.values())
