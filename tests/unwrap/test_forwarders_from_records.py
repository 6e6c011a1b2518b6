"""Unwrap's forwarder table derived from the mailbox directory's records (pure): who forwards
to which forward mailbox, whose forwards are held (pending or rejected), which forward mailboxes
skip the Authentication-Results check."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailroom.records.mailbox import MailboxRecord
from unwrap.context import Forwarder
from unwrap.forwarders import forward_mailboxes

FROM = datetime(2026, 1, 1, tzinfo=UTC)


def box(mid: str, address: str, kind: str = "user", via: str | None = "1",
        **changes: Any) -> MailboxRecord:
    fields: dict[str, Any] = dict(
        mailbox_id=mid, address=address, owner_kind=kind, profile="corp", protocol="imap",
        host="imap.corp.example", port=993, folders=("INBOX",), after_ingest="flag",
        enabled=True, approved=True, status="ok",
        owner_id=None if kind == "forward" else f"{kind}-{mid}",
        via_mailbox_id=None if kind == "forward" else via)
    fields.update(changes)
    return MailboxRecord(**fields)


def test_the_table_follows_the_configuration() -> None:
    records = [
        box("1", "crm-fwd@corp.example", "forward"),
        box("2", "nofwd@corp.example", "forward", check_auth_results=False),
        box("10", " Alice@Corp.example ", process_from=FROM),
        box("11", "support@corp.example", "queue"),
        box("12", "off@corp.example", enabled=False),  # disabled: neither trusted nor held
        box("13", "new@corp.example", approved=False),
        box("14", "no@corp.example", approved=False, approval_at=FROM),
        box("15", "direct@corp.example", via=None),  # polled itself: forwards nothing
        box("16", "lost@corp.example", via="99"),  # its forward mailbox is gone
        box("17", "anon@corp.example", owner_id=""),  # no owner to attribute to
    ]
    got = forward_mailboxes(records, {("user", "user-10"): ["a.agent@corp.example"]})
    alice = Forwarder("user", "user-10")
    assert got.forwarders == {"1": {"alice@corp.example": alice,
                                    "a.agent@corp.example": alice,
                                    "support@corp.example": Forwarder("queue", "queue-11")}}
    assert got.forwarders["1"]["alice@corp.example"].process_from == FROM
    assert got.unapproved == {"1": {"new@corp.example": "pending approval",
                                    "no@corp.example": "rejected"}}
    assert got.unchecked == frozenset({"2"})


def test_an_address_two_owners_claim_is_trusted_for_neither() -> None:
    records = [box("1", "fwd@corp.example", "forward"), box("10", "alice@corp.example"),
               box("11", "carol@corp.example")]
    got = forward_mailboxes(records, {("user", "user-11"): ["alice@corp.example"]})
    assert got.forwarders == {"1": {"carol@corp.example": Forwarder("user", "user-11")}}
