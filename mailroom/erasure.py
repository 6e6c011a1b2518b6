"""The erasure list: digests of what `mailroom erase` removed, consulted so no replay undoes it.

Mail stays in ``mailroom.raw`` (and in the later topics) for their retention after an erasure,
and a replay or a dead-letter retry would otherwise plan and store it again. So every erasure
leaves digests behind — of the Message-IDs, dedupe keys and raw identities of the erased mail
(kind ``id``) and, for an erasure by address, of the address (kind ``address``) — and:

- route skips any email one of whose digests is listed, before planning (its snapshot holds the
  whole list, refreshed with the reference data: no database read per email);
- persist drops any plan or trace event one of whose digests is listed, looking up only the
  digests of the batch in hand, in the batch's own transaction and under a shared advisory lock
  that the erasure takes exclusively — so a batch that read the list before an erasure cannot
  commit after it, and route's slightly older snapshot never matters.

Digests, not the values: the list must outlive the erasure, and keeping the erased address or
Message-ID in clear would keep the very data the person asked to have removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import psycopg

from mailroom.db.arrays import text_array
from mailroom.records.action import Plan
from mailroom.records.email import Email
from mailroom.records.steps import CreateContact, LinkParty, UpsertEmailActivity
from mailroom.records.trace import TraceEvent

#: The advisory lock persist holds shared for a batch and an erasure holds exclusively.
LOCK_ID = int.from_bytes(hashlib.sha256(b"mailroom erasure list").digest()[:8], "big",
                         signed=True)


def id_digest(identifier: str) -> str:
    """A Message-ID (normalised), dedupe key or raw identity."""
    return hashlib.sha256(b"id:" + identifier.strip().encode()).hexdigest()


def address_digest(address: str) -> str:
    return hashlib.sha256(b"address:" + address.strip().lower().encode()).hexdigest()


def _ids(*identifiers: str | None) -> set[str]:
    return {id_digest(i) for i in identifiers if i}


def _addresses(addresses: Iterable[str]) -> set[str]:
    return {address_digest(a) for a in addresses if a and a.strip()}


def email_digests(email: Email) -> set[str]:
    """Everything an Email can be erased by: its identifiers and every address on it."""
    # Not the raw identity: a forward's raw mail may carry other people's originals too.
    return _ids(email.message_id, email.dedupe_key) | _addresses(email.every_address())


def plan_digests(plan: Plan) -> set[str]:
    """A plan's identifiers and addresses, read from its steps (the email is not decoded)."""
    addresses: list[str] = []
    for upsert in plan.steps_of(UpsertEmailActivity):
        addresses += [upsert.sender, *upsert.participants]
    addresses += [s.address for s in plan.steps_of(LinkParty)]
    addresses += [s.address for s in plan.steps_of(CreateContact)]
    return _ids(plan.message_id, plan.dedupe_key) | _addresses(addresses)


def trace_digests(event: TraceEvent) -> set[str]:
    """By its key (a raw identity before unwrap), Message-ID and dedupe key — not by the raw
    identity an unwrapped original carries, which its forward's other originals share."""
    return _ids(event.key, event.message_id, event.dedupe_key)


def load(conn: psycopg.Connection) -> frozenset[str]:
    """The whole list (route's snapshot)."""
    return frozenset(r[0] for r in conn.execute("SELECT digest FROM erasure_list"))


def hold(conn: psycopg.Connection) -> None:
    """Take the erasure lock shared until the end of the caller's transaction (persist).

    A statement of its own, before :func:`listed`: under READ COMMITTED each statement reads
    the data committed when it starts, so the look-up must start after the wait for an erasure
    in progress has ended, or it would not see that erasure's digests."""
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (LOCK_ID,))


def listed(conn: psycopg.Connection, digests: Iterable[str]) -> set[str]:
    """Which of ``digests`` are on the list: one query, for a whole batch."""
    wanted = sorted(set(digests))
    if not wanted:
        return set()
    # An array literal: a batch names hundreds of digests (mailroom.db.arrays).
    rows = conn.execute("SELECT digest FROM erasure_list WHERE digest = ANY(%s::text[])",
                        (text_array(wanted),)).fetchall()
    return {r[0] for r in rows}
