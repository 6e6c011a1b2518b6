"""The correlation chain, one method per test, and its order."""

from __future__ import annotations

from datetime import UTC, datetime

from routebuild import config, email, reference, thread_index

from mailroom.records.steps import SetRegarding
from route.correlation import thread_root
from route.plan import plan

ALL = {"owners": {"queue:support": "all"}}


def _methods(cfg=None, **kw: object) -> list[tuple[str, str]]:
    p = plan(email(**kw), reference(), cfg or config())
    return [(c.method, c.value) for c in p.correlation]


def test_in_reply_to():
    assert _methods(in_reply_to="parent@acme.example") == [("in_reply_to", "parent@acme.example")]


def test_token_in_subject():
    assert _methods(subject="Re: Printer [CRM:0001234]") == [("token", "1234")]


def test_token_with_a_former_prefix_still_correlates():
    cfg = config(token={"prefix": "ACME", "former_prefixes": ["CRM"]})
    assert _methods(cfg, subject="RE: old thread CRM:0000042") == [("token", "42")]
    assert _methods(cfg, subject="RE: new thread ACME:0000043") == [("token", "43")]
    assert _methods(cfg, subject="XCRM:0000042 is not a token") == []


def test_references_newest_first_without_repeating_in_reply_to():
    got = _methods(in_reply_to="c@x", references=("a@x", "b@x", "c@x"))
    assert got == [("in_reply_to", "c@x"), ("references", "b@x"), ("references", "a@x")]


def test_thread_index_root_only_for_replies():
    root, is_reply = thread_root(thread_index(1))
    assert is_reply and len(root) == 32
    assert _methods(thread_index=thread_index(2)) == [("thread_index", root)]
    assert _methods(thread_index=thread_index(0)) == []  # a new conversation has no parent
    assert _methods(thread_index="not base64!") == []


def test_chain_order():
    got = _methods(in_reply_to="p@x", references=("r@x", "p@x"), subject="Re: CRM:0001234",
                   thread_index=thread_index(1))
    assert [m for m, _ in got] == ["in_reply_to", "token", "references", "thread_index"]


def test_smart_match_off_by_default_and_guarded_on_customer():
    assert _methods(subject="Re: Printer broken") == []
    cfg = config(correlation={"smart": True})
    (smart,) = plan(email(subject="RE: Fwd: Printer  BROKEN", cc=("bob@acme.example",)),
                    reference(), cfg).correlation
    assert smart.method == "smart"
    assert smart.customer == "account:a-customer"
    assert smart.min_shared == 2
    assert smart.participants == (
        "ann@customer.example", "bob@acme.example", "support@acme.example")
    assert smart.before == datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    assert smart.since == datetime(2026, 10, 3, 9, 30, tzinfo=UTC)
    # an unknown sender has no customer: smart matching never joins threads across customers
    p = plan(email(sender="stranger@nowhere.example"), reference(), cfg)
    assert p.correlation == ()
    assert "customer is not resolved" in p.decisions[0].detail


def test_methods_switch_per_mailbox_and_per_queue():
    cfg = config(correlation={"scopes": {"queue:support": {"in_reply_to": False},
                                         "mailbox:11": {"token": False}}})
    assert _methods(cfg, in_reply_to="p@x", subject="CRM:0001234") == [("token", "1234")]
    got = _methods(cfg, mailbox="11", owner="user:alice", in_reply_to="p@x",
                   subject="CRM:0001234")
    assert got == [("in_reply_to", "p@x")]


def test_set_regarding_is_conditional_on_the_candidates():
    p = plan(email(in_reply_to="p@x"), reference(), config())
    (step,) = p.steps_of(SetRegarding)
    assert step.condition.kind == "correlates"
    assert not plan(email(), reference(), config()).steps_of(SetRegarding)


def test_smart_match_only_where_a_human_sees_a_reply_or_forward():
    cfg = config(correlation={"smart": True, "smart_min_participants": 1})

    def smart(subject: str, body: str = "It does not print.") -> bool:
        p = plan(email(subject=subject, body=body), reference(), cfg)
        return any(c.method == "smart" for c in p.correlation)

    # A bare repeated subject is no thread: a new "Printer broken" is a new problem.
    assert not smart("Printer broken")
    p = plan(email(subject="Printer broken"), reference(), cfg)
    assert "no reply or forward prefix" in p.decisions[0].detail
    assert not smart("Reboot: printer broken")  # a word ending in "re" is no prefix
    # Reply and forward prefixes of the mail clients' languages.
    for prefix in ("Re:", "RE[2]:", "Fwd:", "AW:", "WG:", "SV:", "VS:", "Réf. :", "TR:", "RV:",
                   "R:", "I:", "Odp:", "回复：", "転送:"):
        assert smart(f"{prefix} Printer broken"), prefix
    # Quoted text: a "> " quote, an Outlook header block, an attribution line.
    assert smart("Printer broken", "Still broken.\n\n> It does not print.")
    assert smart("Printer broken", "Still.\n-----Original Message-----\nFrom: x")
    assert smart("Printer broken", "Still.\n\nAm 2. Nov. 2026 schrieb Ann <ann@x>:\nIt does")


def test_a_token_format_compiles_its_pattern_once():
    # Route asks for it twice an email (finding tokens, stripping them for the subject hash):
    # built per call, it was a tenth of route's pure function.
    from route.tokens import TokenFormat

    fmt = TokenFormat(prefix="ACME", former_prefixes=("CRM",))
    assert fmt.pattern is fmt.pattern
    assert fmt.find("Re: CRM:0000042 and ACME:0000043") == ["42", "43"]
    assert fmt.strip("Re: ACME:0000043 x") == "Re:   x"  # noqa: B005 - our strip, not str.strip
    # the compiled pattern kept on it changes neither equality nor hash (fields alone)
    assert fmt == TokenFormat(prefix="ACME", former_prefixes=("CRM",))
    assert hash(fmt) == hash(TokenFormat(prefix="ACME", former_prefixes=("CRM",)))
