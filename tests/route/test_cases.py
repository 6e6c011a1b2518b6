"""Queue rule items (first match wins), case steps, reopen window and rate limit."""

from __future__ import annotations

from datetime import UTC, datetime

from routebuild import config, email, reference

from mailroom.records.action import step_to_wire
from mailroom.records.steps import CreateOrUpdateCase, CreateQueueItem, UpsertEmailActivity
from route.plan import plan


def _rule(p) -> str:
    return next(d for d in p.decisions if d.rule == "queue_rule").detail


def test_first_matching_item_fires_and_the_trace_says_why():
    p = plan(email(subject="URGENT: printer"), reference(), config())
    assert _rule(p).startswith("queue:support rule 1 'urgent'")
    (case,) = p.steps_of(CreateOrUpdateCase)
    assert case.key == "case|m1@customer.example"
    assert case.queue == "support"
    assert case.customer == "account:a-customer"
    (item,) = p.steps_of(CreateQueueItem)
    assert item.key == "queue_item|support|m1@customer.example"


def test_known_sender_item():
    p = plan(email(), reference(), config())
    assert "rule 2 'known customers'" in _rule(p)
    assert "rule 1 'urgent': subject does not match" in _rule(p)
    assert p.steps_of(CreateOrUpdateCase)


def test_unknown_sender_gets_a_queue_item_only():
    p = plan(email(sender="new@person.example"), reference(), config())
    assert "rule 3 'everyone else'" in _rule(p)
    assert not p.steps_of(CreateOrUpdateCase)
    assert p.steps_of(CreateQueueItem)


def test_body_and_recipient_conditions():
    cfg = config(queues={"support": {"rules": [
        {"name": "billing", "body": "invoice", "recipient": "billing@acme.example"},
    ]}})
    assert not plan(email(body="my invoice"), reference(), cfg).steps_of(CreateQueueItem)
    hit = plan(email(body="my INVOICE", cc=("billing@acme.example",)), reference(), cfg)
    assert hit.steps_of(CreateOrUpdateCase) and hit.steps_of(CreateQueueItem)


def test_no_rule_fires():
    cfg = config(queues={"support": {"rules": [{"name": "x", "subject": "never"}]}})
    p = plan(email(), reference(), cfg)
    assert not p.steps_of(CreateQueueItem) and not p.skipped
    assert "rule 1 'x': subject does not match" in _rule(p)


def test_user_mailboxes_have_no_queue_rules():
    cfg = config(track={"owners": {"user:alice": "all"}})
    p = plan(email(mailbox="11", owner="user:alice"), reference(), cfg)
    assert not p.steps_of(CreateQueueItem) and not p.steps_of(CreateOrUpdateCase)


def test_reopen_window_and_rate_limit_are_conditions_in_emails_time():
    p = plan(email(in_reply_to="parent@acme.example"), reference(), config())
    (case,) = p.steps_of(CreateOrUpdateCase)
    assert case.condition.kind == "case_rules"
    # The wire form route writes, exactly as plans always carried it (docs/plans.md)
    assert step_to_wire(case).condition.params == {
        "sender": "ann@customer.example",
        "sent_at": "2026-11-02T09:30:00.000Z",
        "reopen_window_seconds": str(14 * 86400),
        "rate_limit_cases": "3",
        "rate_limit_window_seconds": "3600",
    }
    # the case step reads the same candidates as set_regarding: an active case is updated
    assert [c.value for c in p.correlation] == ["parent@acme.example"]
    activity = p.steps_of(UpsertEmailActivity)[0]
    assert activity.case_rule == "queue:support rule 2 'known customers'"
    assert activity.sent_at == datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def test_one_case_per_message_across_queues():
    cfg = config(queues={q: {"rules": [{"name": "all"}]} for q in ("support", "sales")})
    to = ("support@acme.example", "sales@acme.example")
    keys = {
        plan(email(mailbox=m, owner=o, to=to), reference(), cfg)
        .steps_of(CreateOrUpdateCase)[0].key
        for m, o in (("10", "queue:support"), ("13", "queue:sales"))
    }
    assert keys == {"case|m1@customer.example"}
