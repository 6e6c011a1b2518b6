"""The demo's rules parts, without services: the candidate it previews says what the demo
claims, the preview's section shows its counts, and the message it redirects through Alice's
rule is refused for exactly the reason the demo prints (and accepted once the hop is vouched
for)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import compat32

from mailroom.console.demo import forwarding_rule, rules_preview
from mailroom.console.demo.scenario import (
    ALICE,
    AUTHSERV_ID,
    CANDIDATE_RULES_TOML,
    RULES_TOML,
)
from mailroom.records.raw import RawMail
from route.config import TrackFilter, from_document
from unwrap.context import Rejection, UnwrapContext
from unwrap.forwarders import FORWARDED_BY_HEADER
from unwrap.unwrap import unwrap


def test_the_candidate_changes_bobs_filter_and_adds_a_sales_case_rule_only() -> None:
    current = from_document(tomllib.loads(RULES_TOML))
    candidate = from_document(tomllib.loads(CANDIDATE_RULES_TOML))
    assert current.filters["user:u-bob"] == TrackFilter.REPLIES
    assert candidate.filters["user:u-bob"] == TrackFilter.KNOWN
    assert {k: v for k, v in candidate.filters.items() if k != "user:u-bob"} == \
        {k: v for k, v in current.filters.items() if k != "user:u-bob"}
    first, second = candidate.queue_rules["q-sales"]
    assert (first.name, first.sender, first.create_case, first.create_queue_item) == \
        ("known customers", "known", True, True)
    assert second == current.queue_rules["q-sales"][0]
    assert candidate.queue_rules["q-support"] == current.queue_rules["q-support"]


def test_the_preview_section_shows_totals_counts_and_first_examples() -> None:
    example = {"subject": "Bulk order: 200 chairs", "sender": "ravi@fabrikam.example",
               "before": "none", "after": "queue:q-sales rule 1 'known customers'"}
    lines = rules_preview.render({
        "file": "candidate-rules.toml", "emails": 20, "changed": 3, "unchanged": 17,
        "counts": {"newly_tracked": 1, "case_created": 1},
        "examples": {"case_created": [example, {**example, "subject": "second"}]},
    })
    text = "\n".join(lines)
    assert "rules preview (mailroom rules preview candidate-rules.toml --since 1d" in text
    assert "20 emails replayed from unwrapped: 3 planned differently, 17 the same" in text
    assert "    newly tracked: 1\n" in text + "\n"
    assert ("    case created: 1 — 'Bulk order: 200 chairs' from ravi@fabrikam.example: none -> "
            "queue:q-sales rule 1 'known customers'") in lines
    assert "second" not in text


def _redirected(extra_results: str = "") -> bytes:
    """What the forward mailbox receives from Alice's rule: the original as Acme's server
    stamped it on arrival, with the rule's header on top (and a stamp for the hop, if any)."""
    original = forwarding_rule.message(AUTHSERV_ID)
    top = f"{FORWARDED_BY_HEADER}: {ALICE}\r\n"
    if extra_results:
        top = f"Authentication-Results: {extra_results}\r\n" + top
    return top.encode() + original


def _raw(data: bytes) -> RawMail:
    return RawMail(mailbox_id="fwd", mailbox_address="crm-forward@acme.example",
                   owner_kind="forward", owner_id=None, folder="INBOX",  # type: ignore[arg-type]
                   direction="incoming", protocol="imap",
                   fetched_at=datetime(2026, 3, 2, tzinfo=UTC), size=len(data), uidvalidity=1,
                   uid=1, content=data)


def test_the_redirect_is_refused_until_our_server_vouches_for_the_hop() -> None:
    ctx = UnwrapContext(forwarders={"fwd": {ALICE: "u-alice"}}, authserv_id=AUTHSERV_ID)
    data = _redirected()
    assert BytesParser(policy=compat32).parsebytes(data)["Message-ID"] == \
        f"<{forwarding_rule.REDIRECTED.message_id}>"
    refused = unwrap(_raw(data), ctx)
    assert isinstance(refused, Rejection) and refused.reason_code == "auth_failed"
    assert f"redirect claimed by {ALICE} ({FORWARDED_BY_HEADER})" in refused.reason
    assert "no spf, dkim or arc pass aligned with acme.example" in refused.reason

    # What a receiving server that checked the hop would add: then it is Alice's email.
    vouched = unwrap(_raw(_redirected(
        f"{AUTHSERV_ID}; spf=pass smtp.mailfrom={ALICE}")), ctx)
    assert isinstance(vouched, list) and len(vouched) == 1
    assert vouched[0].delivery.forwarded_by_user == "u-alice"
    assert vouched[0].dedupe_key == forwarding_rule.REDIRECTED.message_id
