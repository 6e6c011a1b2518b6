"""The customer guard on a real PostgreSQL schema: a mail of customer B carrying customer A's
thread headers (In-Reply-To, References, token, Thread-Index) or A's subject is not linked to
A's thread or case; it starts its own thread, flagged for review, and the trace names the
refused candidate. Internal senders may continue any thread."""

from __future__ import annotations

import base64
from typing import Any

import psycopg
import pytest
from persistbuild import apply, config, email, reference, rows

from mailroom.codec import Codec
from mailroom.records.action import Plan
from mailroom.records.email import Email, Report
from persist.batch import Item, apply_batch
from route.config import RouteConfig
from route.plan import plan
from route.reference import AddressMatch, RecordRef, ReferenceData

pytestmark = pytest.mark.integration  # needs the local stack's PostgreSQL

BEN = "ben@other.example"  # customer B's contact
ROOT = base64.b64encode(bytes(range(22))).decode()
REPLY_INDEX = base64.b64encode(bytes(range(22)) + b"\x01\x02\x03\x04\x05").decode()
SMART = {"correlation": {"smart": True, "smart_min_participants": 1}}


@pytest.fixture(autouse=True)
def customer_b(db: psycopg.Connection) -> None:
    """A second customer, in the stored reference records as in route's snapshot."""
    db.execute("INSERT INTO accounts (id, name, owner_id) VALUES ('a-other', 'Other', 'bob')")
    db.execute("INSERT INTO contacts (id, first_name, last_name, account_id, owner_id) "
               "VALUES ('c-ben', 'Ben', 'Other', 'a-other', 'bob')")
    db.execute("INSERT INTO email_addresses (record_kind, record_id, address, is_primary) "
               "VALUES ('contact', 'c-ben', %s, true)", (BEN,))
    db.commit()


def two_customers() -> ReferenceData:
    ref = reference()
    return ReferenceData(
        addresses={**ref.addresses, BEN: (AddressMatch(
            RecordRef("contact", "c-ben"), owner="bob",
            customer=RecordRef("account", "a-other")),)},
        mailboxes=ref.mailboxes,
    )


def make(codec: Codec, e: Email, **rules: Any) -> Plan:
    cfg: RouteConfig = config(**rules)
    return plan(e, two_customers(), cfg, codec.encode_record(e))


def activity(db: psycopg.Connection, key: str) -> tuple[Any, ...]:
    """(parent's dedupe key, method, regarding, correlation_refused) of one activity."""
    [row] = rows(db, "SELECT p.dedupe_key, a.correlation_method, a.regarding, "
                     "a.correlation_refused FROM email_activities a LEFT JOIN email_activities "
                     "p ON p.id = a.parent_id WHERE a.dedupe_key = %s", key)
    return row


def issue_token(db: psycopg.Connection) -> str:
    """A token answered by alice's outgoing mail to customer A (its activity claims it)."""
    [(number,)] = rows(db, "INSERT INTO route_tokens (regarding_kind, regarding_id) "
                           "VALUES ('account', 'a-customer') RETURNING number")
    db.commit()
    return f"CRM:{number:07d}"


def thread_of_a(db: psycopg.Connection, codec: Codec, method: str) -> dict[str, Any]:
    """Customer A's first email (a case opens), and the header a copy of it would carry."""
    if method == "token":
        token = issue_token(db)
        out = email(mailbox="11", sender="alice@acme.example", to=("ann@customer.example",),
                    direction="outgoing", subject=f"Your printer [{token}]",
                    message_id="m0@acme.example", minutes=-10)
        apply(db, codec, make(codec, out))
        return {"subject": f"Re: Your printer [{token}]"}
    first = email(thread_index=ROOT) if method == "thread_index" else email()
    apply(db, codec, make(codec, first, **(SMART if method == "smart" else {})))
    return {
        "in_reply_to": {"in_reply_to": "m1@customer.example"},
        "references": {"references": ("m1@customer.example",)},
        "thread_index": {"thread_index": REPLY_INDEX},
        "smart": {"subject": "Re: Printer broken"},
    }[method]


METHODS = ["in_reply_to", "references", "token", "thread_index", "smart"]


@pytest.mark.parametrize("method", METHODS)
def test_another_customers_mail_is_refused_the_customer_and_staff_still_link(
    db: psycopg.Connection, codec: Codec, method: str
) -> None:
    headers = thread_of_a(db, codec, method)
    rules = SMART if method == "smart" else {}
    trap = email(sender=BEN, message_id="m9@other.example", minutes=5, **headers)
    [res] = apply(db, codec, make(codec, trap, **rules))
    assert res.applied is not None and res.applied.event == "persisted"
    parent, how, regarding, refused = activity(db, "m9@other.example")
    assert (parent, how) == (None, "")  # its own thread
    assert refused.startswith(method + " ") and "account:a-customer" in refused
    assert "account:a-other" in refused  # says why
    # The trace names the refused candidate.
    assert res.applied.detail["refused"] == refused
    assert "refused by the customer guard" in res.applied.detail["correlation"]
    # Not on A's case: B's mail opened its own case, about B.
    [(own_customer,)] = rows(db, "SELECT c.customer FROM cases c WHERE 'case:' || c.id = %s",
                             regarding)
    assert own_customer == "account:a-other"
    # The review list: every flagged activity.
    assert rows(db, "SELECT dedupe_key FROM email_activities WHERE correlation_refused <> ''"
                ) == [("m9@other.example",)]

    # The customer's own reply still links to its thread.
    reply = email(message_id="m2@customer.example", minutes=6, **headers)
    [res] = apply(db, codec, make(codec, reply, **rules))
    assert res.applied is not None and "refused" not in res.applied.detail
    parent, how, _, refused = activity(db, "m2@customer.example")
    assert (how, refused) == (method, "") and parent is not None

    # A user (internal) may continue any customer's thread: bob writes to the support queue
    # about A's thread, cc customer B. (Smart matching needs the sender's customer: a user
    # has none, so route proposes no smart candidate for him.)
    if method != "smart":
        note = email(sender="bob@acme.example", to=("support@acme.example", BEN),
                     message_id="m3@acme.example", minutes=7, **headers)
        apply(db, codec, make(codec, note))
        parent, how, _, refused = activity(db, "m3@acme.example")
        assert (how, refused) == (method, "") and parent is not None


def test_an_unknown_sender_of_another_domain_is_refused_of_the_customers_domain_linked(
    db: psycopg.Connection, codec: Codec
) -> None:
    apply(db, codec, make(codec, email()))
    stranger = email(sender="eve@elsewhere.example", message_id="m7@elsewhere.example",
                     in_reply_to="m1@customer.example", minutes=5)
    colleague = email(sender="carl@customer.example", message_id="m8@customer.example",
                      in_reply_to="m1@customer.example", minutes=6)
    apply(db, codec, make(codec, stranger), make(codec, colleague))
    parent, _, _, refused = activity(db, "m7@elsewhere.example")
    assert parent is None and "elsewhere.example" in refused
    assert activity(db, "m8@customer.example")[0] == "m1@customer.example"


def test_a_refused_candidate_does_not_hide_a_later_one_nor_wait(
    db: psycopg.Connection, codec: Codec
) -> None:
    """B's mail arrives before A's original: when it lands, B's is re-evaluated and refused
    (nothing left waiting); B's own earlier mail, a later candidate, still wins."""
    own = email(sender=BEN, message_id="m5@other.example", subject="Toner", minutes=-5)
    apply(db, codec, make(codec, own))
    trap = email(sender=BEN, message_id="m9@other.example", minutes=5,
                 in_reply_to="m1@customer.example", references=("m5@other.example",))
    apply(db, codec, make(codec, trap))
    apply(db, codec, make(codec, email()))  # A's original lands last
    parent, how, _, refused = activity(db, "m9@other.example")
    assert (parent, how) == ("m5@other.example", "references")
    assert refused.startswith("in_reply_to m1@customer.example")
    assert rows(db, "SELECT dedupe_key FROM persist_pending_plans") == []


def test_a_bounce_joins_the_email_we_sent_not_a_customers(
    db: psycopg.Connection, codec: Codec
) -> None:
    """A mail server's delivery report has no customer: it may continue the thread at an email
    we sent (the one that bounced), never one a customer sent."""
    out = email(mailbox="11", sender="alice@acme.example", to=("ann@customer.example",),
                direction="outgoing", message_id="m0@acme.example", minutes=-10)
    apply(db, codec, make(codec, out, track={"default": "all"}), make(codec, email()))
    for key, original in (("b1@mx.example", "m0@acme.example"),
                          ("b2@mx.example", "m1@customer.example")):
        bounce = email(sender="mailer-daemon@mx.example", message_id=key, minutes=5,
                       subject="Undelivered Mail Returned to Sender", in_reply_to=original,
                       report=Report(kind="bounce", failed_recipients=("ann@customer.example",),
                                     original_message_id=original))
        apply(db, codec, make(codec, bounce))
    assert activity(db, "b1@mx.example")[0] == "m0@acme.example"
    parent, _, _, refused = activity(db, "b2@mx.example")
    assert parent is None and refused.startswith("in_reply_to m1@customer.example")



@pytest.mark.parametrize("sender", [BEN, "ann@customer.example"])
def test_a_new_emails_correlation_is_written_with_its_row_not_updated_after(
    db: psycopg.Connection, codec: Codec, sender: str
) -> None:
    """Refused (customer B) or linked (the customer's own reply): the row is inserted with its
    parent and its refused candidates, not updated with them after (an UPDATE of the refused
    column is a new row version in every index of the table, and a second change-feed note)."""
    headers = thread_of_a(db, codec, "in_reply_to")
    reply = make(codec, email(sender=sender, message_id="m9@reply.example", minutes=5,
                              **headers))
    sent: list[str] = []

    class Recording(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            sent.append(str(query))
            return super().execute(query, params, **kwargs)

    db.cursor_factory = Recording
    try:
        with db.transaction():
            apply_batch(db, codec, [Item(reply, codec.encode_record(reply), 1_000)])
    finally:
        db.cursor_factory = psycopg.Cursor
    assert any(q.startswith("INSERT INTO email_activities") for q in sent)
    assert not [q for q in sent if q.startswith("UPDATE email_activities") and (
        "parent_id" in q or "correlation_refused" in q)]
    parent, how, _, refused = activity(db, "m9@reply.example")
    if sender == BEN:
        assert (parent, how) == (None, "") and refused.startswith("in_reply_to ")
    else:
        assert (parent, how, refused) == ("m1@customer.example", "in_reply_to", "")
