"""A forward from a user or queue whose mailbox is not approved is held (the dead letter
``forwarder_not_approved``, naming the forwarder so approving can release exactly those), not
refused as if it came from a stranger."""

from __future__ import annotations

from datetime import UTC, datetime

from mailroom.console.demo.mail import forward
from mailroom.console.demo.scenario import Letter
from mailroom.records.raw import RawMail
from unwrap.attribution import HELD
from unwrap.context import Rejection, UnwrapContext
from unwrap.forwarders import FORWARDED_BY_HEADER
from unwrap.unwrap import unwrap

AUTHSERV = "mx.acme.example"
LETTER = Letter("held", "ann@customer.example", ("carol@acme.example",), "Held for approval",
                datetime(2026, 3, 2, 9, 0, tzinfo=UTC), "Hello Carol.")


def _run(data: bytes, state: str = "pending approval") -> object:
    raw = RawMail(mailbox_id="7", mailbox_address="crm-forward@acme.example",
                  owner_kind="forward", owner_id=None, folder="INBOX", direction="incoming",
                  protocol="imap", uidvalidity=1, uid=1, fetched_at=datetime.now(UTC),
                  size=len(data), content=data)
    ctx = UnwrapContext(forwarders={"7": {"alice@acme.example": "u-alice"}},
                        unapproved_forwarders={"7": {"Carol@acme.example": state}},
                        authserv_id=AUTHSERV)
    return unwrap(raw, ctx)


def test_a_pending_forwarders_forward_is_held_naming_the_forwarder() -> None:
    result = _run(forward(LETTER, "carol@acme.example", "crm-forward@acme.example", AUTHSERV))
    assert isinstance(result, Rejection) and result.reason_code == HELD
    assert "<carol@acme.example>" in result.reason and "pending approval" in result.reason


def test_a_rejected_forwarders_forward_is_held_too() -> None:
    result = _run(forward(LETTER, "carol@acme.example", "crm-forward@acme.example", AUTHSERV),
                  state="rejected")
    assert isinstance(result, Rejection) and result.reason_code == HELD
    assert "is rejected" in result.reason


def test_a_redirect_claimed_for_a_pending_forwarder_is_held() -> None:
    data = (f"{FORWARDED_BY_HEADER}: carol@acme.example\r\n").encode() + forward(
        LETTER, "ann@customer.example", "carol@acme.example", AUTHSERV)
    result = _run(data)
    assert isinstance(result, Rejection) and result.reason_code == HELD


def test_strangers_are_still_not_forwarders() -> None:
    result = _run(forward(LETTER, "eve@acme.example", "crm-forward@acme.example", AUTHSERV))
    assert isinstance(result, Rejection) and result.reason_code == "not_a_forwarder"
