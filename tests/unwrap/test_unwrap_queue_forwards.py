"""A queue behind a forward mailbox: its forwards are the queue's mail, not a user's (route
then applies the queue's rules: tests/route/test_route_queue_forwards.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from mailroom.console.demo.mail import forward
from mailroom.console.demo.scenario import Letter
from mailroom.records.email import Email
from mailroom.records.raw import RawMail
from unwrap.context import Forwarder, Rejection, UnwrapContext
from unwrap.unwrap import unwrap

AUTHSERV = "mx.acme.example"
FORWARD_ID = "7"
LETTER = Letter("q-order", "ann@customer.example", ("sales@acme.example",),
                "Quote for 40 desks", datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
                "Please quote 40 desks.\nAnn")


def _raw(content: bytes) -> RawMail:
    return RawMail(mailbox_id=FORWARD_ID, mailbox_address="crm-forward@acme.example",
                   owner_kind="forward", owner_id=None, folder="INBOX", direction="incoming",
                   protocol="imap", uidvalidity=1, uid=1, fetched_at=datetime.now(UTC),
                   size=len(content), content=content)


def _unwrap(forwarders: dict[str, Forwarder | str]) -> list[Email] | Rejection:
    data = forward(LETTER, "sales@acme.example", "crm-forward@acme.example", AUTHSERV)
    return unwrap(_raw(data), UnwrapContext(forwarders={FORWARD_ID: forwarders},
                                            authserv_id=AUTHSERV))


def test_a_queues_forward_is_attributed_to_the_queue() -> None:
    result = _unwrap({"sales@acme.example": Forwarder("queue", "sales")})
    assert isinstance(result, list), result
    [email] = result
    d = email.delivery
    assert (d.forwarded_by_queue, d.forwarded_by_user) == ("sales", None)
    assert d.forwarder_address == "sales@acme.example" and d.forward_mailbox_id == FORWARD_ID
    assert email.message_id == LETTER.message_id


def test_without_the_queue_in_the_table_it_is_not_a_forwarder() -> None:
    result = _unwrap({"alice@acme.example": "u-alice"})
    assert isinstance(result, Rejection) and result.reason_code == "not_a_forwarder"
