"""When mail last arrived through each user's forwarding rule, and whose rule looks broken.

Read from the records through persist's own query
(:func:`persist.activities.last_forward_arrivals`): the newest email received in the forward
mailbox that unwrap attributed to the user (``activity_mailboxes.forwarded_by`` is the user's
id, or ``queue:<id>``). A rule cannot be watched directly — a server that stops forwarding says
nothing — but its silence shows beside the others: a user whose mail stopped while the others'
kept arriving has a broken rule (deleted by the user, deactivated by another script, a changed
password on a server that checks it, a full quota). A forward mailbox where *nobody's* mail
arrives is ingest's problem, not a rule's, and is reported elsewhere.

The comparison uses arrival times only, so it needs no clock and no state of its own: a user
is *silent* when their newest arrival (or none at all) is more than :data:`SILENT_AFTER` older
than the newest arrival of anyone else behind the same forward mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from ingest import store
from ingest.model import Mailbox, OwnerKind
from mailroom.console.ops.rule_deploy import forwarders
from persist.activities import last_forward_arrivals

#: How far behind the others a user's mail may fall before the rule is called broken.
SILENT_AFTER = timedelta(days=2)


@dataclass(frozen=True)
class Silence:
    """A user behind a forward mailbox whose mail stopped while the others' went on."""

    address: str
    last: datetime | None  # None: nothing ever arrived through this user's rule
    others_last: datetime

    def describe(self) -> str:
        since = f"last on {self.last.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if self.last \
            else "nothing ever"
        return (f"{self.address}: {since}, while other users' forwards kept arriving "
                f"(latest {self.others_last.astimezone(UTC):%Y-%m-%d %H:%M} UTC)")


def forwarder_key(m: Mailbox) -> str:
    """How persist names the forwarder of a copy: the user's id, or ``queue:<id>``."""
    return f"queue:{m.owner_id}" if m.owner_kind == OwnerKind.QUEUE else m.owner_id


def last_arrivals(conn: psycopg.Connection, forward: Mailbox) -> dict[str, datetime]:
    """{forwarder key: newest arrival} of the mail received through ``forward``."""
    return last_forward_arrivals(conn, str(forward.id))


def last_arrival(arrivals: dict[str, datetime], m: Mailbox) -> datetime | None:
    return arrivals.get(forwarder_key(m)) if m.owner_id else None


def silent(users: list[Mailbox], arrivals: dict[str, datetime],
           after: timedelta = SILENT_AFTER) -> list[Silence]:
    """The enabled users whose mail fell more than ``after`` behind everyone else's."""
    counted = [m for m in users if m.enabled and m.approved and m.owner_id]
    out = []
    for m in counted:
        mine = last_arrival(arrivals, m)
        others = [t for u in counted if u is not m
                  if (t := last_arrival(arrivals, u)) is not None]
        if not others:
            continue  # nobody else to compare with
        newest = max(others)
        if mine is None or mine < newest - after:
            out.append(Silence(m.address, mine, newest))
    return out


def silent_everywhere(conn: psycopg.Connection,
                      after: timedelta = SILENT_AFTER) -> list[tuple[str, Silence]]:
    """(forward mailbox address, silence) for every forward mailbox (for doctor)."""
    out = []
    forwards = store.mailboxes(conn, owner_kind=OwnerKind.FORWARD)
    for forward in sorted(forwards, key=lambda m: m.address):
        users = forwarders(conn, forward)
        if len(users) > 1:
            out += [(forward.address, s)
                    for s in silent(users, last_arrivals(conn, forward), after)]
    return out
