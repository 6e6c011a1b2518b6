"""The customer guard: a thread of one customer is never continued by another customer's mail.

Any header can be copied: a mail from customer B that carries customer A's In-Reply-To,
References, tracking token or Thread-Index (a forward, a reused old mail, a template) would
otherwise join A's thread — and A's case. So every resolved candidate is checked here, against
the *stored* thread (persist is the authority; route's snapshot may be stale):

* an internal sender (an outgoing email, or a sender address of a user or a queue) may continue
  any thread — staff forward and answer across customers;
* a delivery report (bounce) from a sender of no customer may continue a thread at an email we
  sent (the one that bounced);
* when both the thread's customer and the sender's are known, they must be the same record;
* when either is unknown, the sender's domain must be one of the thread's participants' domains
  (no participants to compare: refused, unless neither side names a customer).

A refused candidate is skipped: the next candidate may still win, else the email starts its own
thread; the refusal is kept on the activity (``correlation_refused``) for review (docs/route.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from mailroom.db import statements


@dataclass(frozen=True)
class Sender:
    """The new email's side of the check."""

    customer: str  # 'kind:id' of the sender's customer, or ''
    address: str  # normalised
    internal: str  # why the sender may continue any thread ('outgoing'), or '' (not yet known)
    report: bool = False  # a delivery report (bounce) about one of our emails


@dataclass(frozen=True)
class Thread:
    """The stored thread's side: its customer and the addresses it was exchanged with."""

    customer: str
    addresses: tuple[str, ...]
    outgoing: bool = False  # the parent is an email we sent


def domain(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


def sender_of(customer: str, address: str, direction: str, report: bool = False) -> Sender:
    return Sender(customer, address.strip().lower(),
                  "outgoing" if direction == "outgoing" else "", report)


def internal_record(conn: psycopg.Connection, sender: Sender) -> str:
    """The user or queue the sender's address names, or '' — read only when a candidate would
    be refused (the rare case), so ordinary mail costs no extra read."""
    if not sender.address:
        return ""
    row = statements.run(
        conn,
        "SELECT record_kind || ':' || record_id FROM email_addresses WHERE address = %s "
        "AND record_kind IN ('user', 'queue') LIMIT 1", (sender.address,),
    ).fetchone()
    return str(row[0]) if row else ""


def _customer_of_record(conn: psycopg.Connection, record: str) -> str:
    """The customer a regarding record stands for: a case's customer, a contact's account."""
    kind, _, rid = record.partition(":")
    if kind == "case" and rid.isdigit():
        row = conn.execute("SELECT customer FROM cases WHERE id = %s", (int(rid),)).fetchone()
        return str(row[0]) if row else ""
    if kind == "contact":
        row = conn.execute("SELECT account_id FROM contacts WHERE id = %s", (rid,)).fetchone()
        return f"account:{row[0]}" if row and row[0] else record
    return record if kind in ("account", "lead") else ""


@dataclass(frozen=True)
class Parent:
    """The parent activity's columns the check reads (:data:`PARENT_COLUMNS`, in order)."""

    customer: str | None
    participants: list[str] | None
    sender: str | None
    regarding: str | None
    outgoing: bool | None


#: What :class:`Parent` holds, as a select list of ``email_activities``: a caller that reads the
#: parent anyway (persist.correlate) reads these with it and saves the check its own read.
PARENT_COLUMNS = "customer, participants, sender, regarding, direction = 'outgoing'"


def thread_of(conn: psycopg.Connection, parent_id: int | None, regarding: str,
              parent: Parent | None = None) -> Thread:
    """The thread a candidate resolved to: its parent activity (``parent``: its columns, read
    already), else (a token whose email is not stored) the record the token regards."""
    if parent_id is not None:
        if parent is None:
            row = statements.run(
                conn, f"SELECT {PARENT_COLUMNS} FROM email_activities WHERE id = %s",
                (parent_id,),
            ).fetchone()
            parent = Parent(*row) if row is not None else None
        if parent is not None:
            customer = parent.customer or _customer_of_record(conn, parent.regarding or "")
            return Thread(customer, tuple(parent.participants or ())
                          + ((parent.sender,) if parent.sender else ()), bool(parent.outgoing))
    return Thread(_customer_of_record(conn, regarding), ())


def check(conn: psycopg.Connection, sender: Sender, parent_id: int | None,
          regarding: str, parent: Parent | None = None) -> str:
    """Why the sender may not continue the thread a candidate resolved to, or '' if it may
    (``parent``: the parent's columns, when the caller read them with it)."""
    if sender.internal:
        return ""
    why = refusal(sender, thread_of(conn, parent_id, regarding, parent))
    if why and internal_record(conn, sender):
        return ""
    return why


def refusal(sender: Sender, thread: Thread) -> str:
    """Why an external sender may not continue the thread, or '' when it may."""
    if sender.report and thread.outgoing and not sender.customer:
        return ""  # a mail server's bounce of an email we sent: it belongs with that email
    if sender.customer and thread.customer:
        if sender.customer == thread.customer:
            return ""
        return f"the thread is {thread.customer}'s, the sender is {sender.customer}'s"
    if not (sender.customer or thread.customer or thread.addresses):
        return ""  # nothing on either side to tell customers apart
    domains = {domain(a) for a in thread.addresses} - {""}
    own = domain(sender.address)
    if own and own in domains:
        return ""
    whose = thread.customer or "a thread"
    return (f"{whose} was exchanged with {', '.join(sorted(domains)) or 'no known address'}, "
            f"not with the sender's domain {own or '(none)'}")
