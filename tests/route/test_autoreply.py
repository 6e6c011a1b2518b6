"""Loops, auto-replies and bounces never open a case; bounces mark the original failed."""

from __future__ import annotations

import pytest
from routebuild import config, email, reference

from mailroom.records.email import Markers, Report
from mailroom.records.steps import CreateOrUpdateCase, MarkDeliveryFailed, UpsertEmailActivity
from route.plan import plan


@pytest.mark.parametrize(
    ("kw", "rule"),
    [
        ({"markers": Markers(auto_submitted="auto-replied")}, "autoreply.auto_submitted"),
        ({"markers": Markers(precedence="bulk")}, "autoreply.precedence"),
        ({"markers": Markers(precedence="junk")}, "autoreply.precedence"),
        ({"markers": Markers(precedence="list")}, "autoreply.precedence"),
        ({"markers": Markers(x_auto_response_suppress="All")},
         "autoreply.x_auto_response_suppress"),
        ({"markers": Markers(x_autoreply="yes")}, "autoreply.x_autoreply"),
        ({"sender": "MAILER-DAEMON@mx.example"}, "autoreply.mailer_daemon"),
        ({"sender": "sales@acme.example"}, "autoreply.loop"),
    ],
)
def test_automated_mail_never_opens_a_case(kw, rule):
    p = plan(email(subject="urgent", **kw), reference(), config())
    assert not p.steps_of(CreateOrUpdateCase)
    assert rule in [d.rule for d in p.decisions]
    assert p.steps_of(UpsertEmailActivity)  # still tracked: the filter accepted it


def test_auto_submitted_no_is_a_person():
    p = plan(email(subject="urgent", markers=Markers(auto_submitted="no")), reference(),
             config())
    assert p.steps_of(CreateOrUpdateCase)


def test_failed_bounce_marks_the_original_delivery_failed():
    bounce = email(sender="MAILER-DAEMON@mx.example", subject="Undelivered Mail",
                   message_id="b1@mx.example", in_reply_to="orig@acme.example",
                   report=Report("bounce", "delivery-status",
                                 ("Gone@customer.example",)))
    p = plan(bounce, reference(), config())
    (failed,) = p.steps_of(MarkDeliveryFailed)
    assert failed.key == "orig@acme.example|gone@customer.example"
    assert failed.condition.kind == "original_tracked"
    assert failed.condition.message_id == "orig@acme.example"
    assert not p.steps_of(CreateOrUpdateCase)


def test_delayed_is_not_a_failed_delivery():
    delayed = email(sender="MAILER-DAEMON@mx.example", in_reply_to="orig@acme.example",
                    report=Report("delayed", "delivery-status", ("x@y.example",)))
    assert not plan(delayed, reference(), config()).steps_of(MarkDeliveryFailed)


def test_plan_round_trips_through_its_schema():
    from pathlib import Path

    from mailroom.codec import Codec
    from mailroom.records.action import Plan

    codec = Codec.load(Path(__file__).resolve().parents[2] / "schemas")
    p = plan(email(in_reply_to="p@x", subject="urgent"), reference(), config(), b"\xc3\x01x")
    assert codec.decode_record(codec.encode_record(p), Plan) == p


def test_the_returned_message_id_names_the_bounced_original():
    # The MTA's In-Reply-To points elsewhere; the report's returned headers name the original.
    bounce = email(sender="MAILER-DAEMON@mx.example", subject="Undelivered Mail",
                   message_id="b2@mx.example", in_reply_to="other@acme.example",
                   report=Report("bounce", "failed", ("gone@customer.example",),
                                 original_message_id="orig@acme.example"))
    (failed,) = plan(bounce, reference(), config()).steps_of(MarkDeliveryFailed)
    assert failed.condition.message_id == "orig@acme.example"
