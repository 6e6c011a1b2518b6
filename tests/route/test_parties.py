"""Party resolution: precedence, the owner's tie-break, ambiguity, contact creation."""

from __future__ import annotations

from routebuild import config, email, reference

from mailroom.records.steps import CreateContact, LinkParty
from route.plan import plan
from route.reference import AddressMatch, RecordRef


def _links(p, role: str) -> list[tuple[str, str]]:
    return [(s.record, s.outcome) for s in p.steps_of(LinkParty)
            if s.role == role]


def M(kind: str, ident: str, owner: str | None = None) -> AddressMatch:  # noqa: N802
    return AddressMatch(RecordRef(kind, ident), owner=owner)


def test_precedence_user_contact_account_lead_queue():
    shared = "shared@acme.example"
    ordered = [M("queue", "q"), M("lead", "l"), M("account", "a"), M("contact", "c"),
               M("user", "u")]
    for n in range(1, 6):
        ref = reference(**{shared: tuple(ordered[:n])})
        p = plan(email(sender=shared), ref, config())
        assert _links(p, "from") == [(str(ordered[n - 1].record), "resolved")]


def test_record_owned_by_the_mailbox_owner_wins_the_tie():
    ref = reference(**{"twin@x.example": (M("contact", "c1", owner="bob"),
                                          M("contact", "c2", owner="alice"))})
    cfg = config(track={"owners": {"user:alice": "all"}})
    p = plan(email(mailbox="11", owner="user:alice", sender="twin@x.example"), ref, cfg)
    assert _links(p, "from") == [("contact:c2", "resolved")]


def test_too_many_matches_leave_the_address_unresolved():
    ref = reference(**{"twin@x.example": (M("contact", "c1"), M("contact", "c2"))})
    p = plan(email(sender="twin@x.example"), ref, config())
    assert _links(p, "from") == [("", "ambiguous")]
    assert "2 contact records" in p.steps_of(LinkParty)[0].detail
    # with a higher limit both are linked
    p = plan(email(sender="twin@x.example"), ref, config(parties={"max_matches": 2}))
    assert _links(p, "from") == [("contact:c1", "resolved"), ("contact:c2", "resolved")]


def test_every_role_is_linked_once():
    p = plan(email(to=("support@acme.example", "SUPPORT@acme.example"),
                   cc=("bob@acme.example",)), reference(), config())
    roles = [(s.role, s.record) for s in p.steps_of(LinkParty)]
    assert roles == [("from", "contact:c-ann"), ("to", "queue:support"), ("cc", "user:bob")]


def test_unknown_sender_creates_a_contact_when_the_policy_says_so():
    cfg = config(track={"owners": {"queue:support": "all"},
                        "create_contacts": {"queue:support": True}})
    p = plan(email(sender="new@person.example"), reference(), cfg)
    (create,) = p.steps_of(CreateContact)
    assert create.key == "contact|new@person.example"
    assert create.condition.kind == "address_unknown"
    assert create.condition.address == "new@person.example"
    (link,) = [s for s in p.steps_of(LinkParty) if s.role == "from"]
    assert link.contact_step == create.key and link.outcome == "unknown"
    # no policy: no contact, the party stays unresolved
    no_policy = plan(email(sender="new@person.example"), reference(), config())
    assert not no_policy.steps_of(CreateContact)


def test_no_contact_for_automated_senders():
    cfg = config(track={"owners": {"queue:support": "all"},
                        "create_contacts": {"queue:support": True}})
    p = plan(email(sender="MAILER-DAEMON@mx.example"), reference(), cfg)
    assert not p.steps_of(CreateContact)
