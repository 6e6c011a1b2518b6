"""Track filters, one per test, and the any-mailbox-accepts rule."""

from __future__ import annotations

from routebuild import config, email, reference

from mailroom.records.steps import UpsertEmailActivity
from route.plan import plan


def _plan(owner_filter: str, **kw: object):
    cfg = config(track={"default": "replies", "owners": {"user:alice": owner_filter}})
    return plan(email(mailbox="11", owner="user:alice", to=("alice@acme.example",), **kw),
                reference(), cfg)


def test_all_accepts_anything():
    p = _plan("all", sender="stranger@nowhere.example")
    assert not p.skipped
    assert p.accepting_owner == "user:alice"
    assert p.steps_of(UpsertEmailActivity)[0].condition is None


def test_none_skips_with_a_reason():
    p = _plan("none")
    assert [s.kind for s in p.steps] == ["skip"]
    assert "no mail is tracked" in p.steps[0].reason
    assert p.accepting_owner == ""


def test_replies_without_any_reference_is_skipped():
    p = _plan("replies")
    assert p.skipped
    assert "not a reply" in p.steps[0].reason


def test_replies_is_a_condition_persist_evaluates():
    p = _plan("replies", in_reply_to="parent@acme.example")
    upsert = p.steps_of(UpsertEmailActivity)[0]
    assert upsert.condition is not None and upsert.condition.kind == "correlates"
    assert "not a reply to tracked mail" in upsert.condition.otherwise
    assert [c.method for c in p.correlation] == ["in_reply_to"]


def test_known_accepts_a_contact_and_rejects_a_stranger():
    assert not _plan("known").skipped
    stranger = _plan("known", sender="stranger@nowhere.example")
    assert stranger.skipped and "not a known" in stranger.steps[0].reason


def test_known_does_not_count_users_but_email_enabled_does():
    assert _plan("known", sender="bob@acme.example").skipped
    assert not _plan("email_enabled", sender="bob@acme.example").skipped


def test_outgoing_mail_is_judged_by_its_recipients():
    cfg = config(track={"owners": {"user:alice": "known"}})
    sent = email(mailbox="11", owner="user:alice", sender="alice@acme.example",
                 to=("ann@customer.example",), direction="outgoing")
    assert not plan(sent, reference(), cfg).skipped


def test_forwarded_copy_belongs_to_the_forwarding_user():
    cfg = config(track={"owners": {"user:bob": "all"}})
    copy = email(mailbox="99", owner="forward:", forwarded_by="bob",
                 to=("bob@acme.example",))
    p = plan(copy, reference(), cfg)
    assert p.accepting_owner == "user:bob"
    assert p.receiving_mailbox == "99"


def test_one_message_from_three_mailboxes():
    """Each copy gets its own plan; persist stores the email if any copy's plan accepts it,
    and every accepting copy adds its mailbox. The natural keys are the same for all three."""
    cfg = config(track={"owners": {"user:alice": "none", "user:bob": "replies",
                                   "queue:support": "all"}})
    to = ("alice@acme.example", "bob@acme.example", "support@acme.example")
    copies = [email(mailbox=m, owner=o, to=to, in_reply_to="p@acme.example")
              for m, o in (("11", "user:alice"), ("12", "user:bob"), ("10", "queue:support"))]
    alice, bob, support = (plan(c, reference(), cfg) for c in copies)
    assert alice.skipped
    assert bob.steps_of(UpsertEmailActivity)[0].condition.kind == "correlates"
    assert support.steps_of(UpsertEmailActivity)[0].condition is None
    assert {p.dedupe_key for p in (alice, bob, support)} == {"m1@customer.example"}
    keys = {p.steps_of(UpsertEmailActivity)[0].key for p in (bob, support)}
    assert keys == {"m1@customer.example"}
    assert (bob.accepting_owner, support.accepting_owner) == ("user:bob", "queue:support")
