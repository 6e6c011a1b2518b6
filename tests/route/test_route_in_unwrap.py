"""Route deciding inside unwrap's processes (``route_in_unwrap``): the same Email and the same
plan as the two stages apart, each stage's trace events under its own name, and the tools and
processes that must know route has no processes of its own."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from pipeline_testing import own_topics
from routebuild import config, reference

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.commands.route_in_unwrap import UnwrapRouteHandler
from mailroom.console.doctor import check_groups
from mailroom.console.ops.groups import check_stage, running_stages, stage_group
from mailroom.errors import ConfigError
from mailroom.records.action import Plan
from mailroom.records.email import Email
from mailroom.records.raw import RawMail
from mailroom.settings import Settings
from mailroom.stage.types import Context, Outcome, Source
from route import stage as route_stage
from route.plan import plan
from unwrap.stage import UnwrapHandler


def _raw() -> RawMail:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@customer.example>"
    msg["To"] = "support@acme.example"
    msg["Subject"] = "urgent: the printer is on fire"
    msg["Date"] = "Tue, 11 Mar 2025 10:00:00 +0000"
    msg["Message-ID"] = "<fire-1@customer.example>"
    msg.set_content("It is really on fire.")
    data = msg.as_bytes()
    return RawMail(mailbox_id="10", mailbox_address="support@acme.example", owner_kind="queue",
                   owner_id="support", folder="INBOX", direction="incoming", protocol="imap",
                   fetched_at=datetime(2025, 3, 11, 10, 1, tzinfo=UTC), size=len(data),
                   uidvalidity=1, uid=7, content=data)


def _handler(settings: Settings) -> UnwrapRouteHandler:
    handler = UnwrapRouteHandler.__new__(UnwrapRouteHandler)
    handler.unwrap = UnwrapHandler(settings, forwarders={})
    handler.route = route_stage.RouteHandler(
        None, route_stage.Snapshot(reference(), config(), time.monotonic()))
    return handler


def test_the_email_and_its_plan_are_those_of_the_two_stages_apart() -> None:
    settings = Settings()
    codec = Codec.from_settings(settings)
    raw = _raw()
    context = Context("unwrap", Source("p.raw", 2, 40, b"10/INBOX/1/7", b"raw-bytes", 1234))

    both = _handler(settings)(raw, context)
    alone = UnwrapHandler(settings, forwarders={})(raw, context)

    assert isinstance(both, Outcome) and isinstance(alone, Outcome)
    (email_out,) = alone.outputs
    assert [(o.topic, o.key) for o in both.outputs] == [
        ("unwrapped", email_out.key), ("actions", email_out.key)]
    assert both.outputs[0].encoded == email_out.encoded  # unwrapped still gets the Email
    # The plan is what route makes of that Email read from the topic (its bytes included).
    read = codec.decode_record(email_out.encoded, Email)
    expected = plan(read, reference(), config(), email_out.encoded)
    got = both.outputs[1].record
    assert isinstance(got, Plan)
    assert codec.encode_record(got) == codec.encode_record(expected)
    assert [(t.event, t.stage) for t in both.traces] == [("unwrapped", None), ("routed", "route")]


def test_a_rejection_by_unwrap_is_the_answer_and_route_is_not_asked() -> None:
    settings = Settings().replace(unwrap_max_message_bytes=100)
    handler = _handler(settings)
    handler.route = None  # type: ignore[assignment]  # asked, it would raise
    answer = handler(_raw(), Context("unwrap", Source("p.raw", 0, 1, None, None, 0)))
    assert not isinstance(answer, Outcome)
    assert answer.reason_code


def test_route_has_no_processes_of_its_own() -> None:
    fused = Settings().replace(route_in_unwrap=True)
    assert "route" in running_stages(Settings())
    assert list(running_stages(fused)) == ["unwrap", "persist"]
    assert check_stage("route", Settings()) == "route"
    with pytest.raises(ConfigError, match="replay unwrap"):
        check_stage("route", fused)
    with pytest.raises(ConfigError, match="route_in_unwrap"):
        route_stage.main(fused, argparse.Namespace())


@pytest.mark.integration
def test_doctor_warns_of_route_processes_left_running(isolated_settings: Settings) -> None:
    """A route process started before the switch still reads unwrapped: each email would be
    routed twice. Doctor names it; with none left, nothing to say."""
    fused = isolated_settings.replace(route_in_unwrap=True)
    with own_topics(fused):

        def warned() -> list[str]:
            return [f.detail for f in check_groups(fused) if f.level == "WARN"]

        assert warned() == []
        router = kafka.make_consumer(fused, stage_group(fused, "route"),
                                     [fused.topic("unwrapped")], client_id="old-router")
        try:
            deadline = time.monotonic() + 30
            while not router.assignment() and time.monotonic() < deadline:
                router.poll(200)
            assert router.assignment(), "the route consumer joined its group"
            (detail,) = warned()
            assert "1 route process(es) still running (old-router)" in detail
            # The same group is no concern with the stages apart.
            assert [f for f in check_groups(isolated_settings) if f.level == "WARN"] == []
        finally:
            router.close()
