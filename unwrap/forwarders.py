"""Who may forward to which forward mailbox: a cached read of ingest's mailboxes in PostgreSQL.

The attribution check needs ``{forward mailbox id: {forwarder address: Forwarder}}``, and the
forward mailboxes whose operator switched the Authentication-Results check off
(``ingest_mailboxes.check_auth_results``). The truth is ingest's configuration: a *user* or
*queue* mailbox whose incoming method is "via forward mailbox X"
(``ingest_mailboxes.via_mailbox_id``). A queue forwards like a user: its forwards become the
queue's mail, routed by the queue's rules (queue items, cases). The brief prefers reading the
derived, compacted ``mailroom.mailboxes`` topic; it is not published yet (no Avro schema in
``schemas/``), so this module reads PostgreSQL instead — once per :data:`REFRESH_SECONDS`,
never per message. When ingest publishes that topic, only :func:`load_forward_mailboxes` needs
replacing.

Which addresses count as the forwarder's: the address of its mailbox (the one the forwarding
rule sends from) and, when the reference records are imported, the user's or queue's own
addresses in ``email_addresses`` (aliases; that table's unique index lets a user or queue
address name only one owner, so an alias cannot attribute mail to two owners). Only enabled,
approved mailboxes count: an admin who disables a user's mailbox stops attributing forwards to
that user (such forwards are dead-lettered ``not_a_forwarder`` and can be retried after
re-enabling).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import psycopg

from mailroom.errors import TransientError
from unwrap.addresses import ascii_lower
from unwrap.context import Forwarder, Forwarders

T = TypeVar("T")

#: The header a forwarding rule on our own mail server adds to every message it *redirects*
#: (sends on intact, not as an attachment) to a forward mailbox. Its value is the forwarding
#: user's (or queue's) mailbox address, a plain addr-spec such as ``alice@corp.example``. The
#: Sieve script that ``mailroom rules deploy`` writes adds it with ``addheader`` before its
#: ``redirect``; unwrap reads it as a *claim* only, believed under the same fail-closed rules as
#: any forward (``unwrap.redirects``). One name, imported wherever the header is written or read.
FORWARDED_BY_HEADER = "X-Mailroom-Forwarded-By"

log = logging.getLogger(__name__)

#: How old the cached table may get. A forwarder added now is honoured within this time; a
#: forward that arrived earlier was dead-lettered ``not_a_forwarder`` and can be retried.
REFRESH_SECONDS = 60.0
#: Before a forward is refused or held, the table is read again if it was read before the
#: record was written (plus this margin for clocks that differ between hosts): the forwards an
#: approval releases are written after the approval, so they always meet it, and a forwarder
#: added a moment ago is honoured. Records older than the table (a backlog, a flood) cost no
#: read.
RECHECK_SKEW_MS = 2_000
#: After a read failed (database down), a record's recheck tries again only after this long: a
#: stream of refused forwards must not become one connection attempt each (the table kept is
#: what they are judged by either way).
RECHECK_AFTER_FAILURE_S = 1.0

_MAILBOX_ADDRESSES = """
SELECT f.id::text, btrim(u.address), u.owner_kind, u.owner_id, u.process_from
  FROM ingest_mailboxes u
  JOIN ingest_mailboxes f ON f.id = u.via_mailbox_id AND f.owner_kind = 'forward'
 WHERE u.owner_kind IN ('user', 'queue') AND u.owner_id <> '' AND u.enabled AND u.approved
"""

_ALIASES = """
SELECT f.id::text, a.address, u.owner_kind, u.owner_id, u.process_from
  FROM ingest_mailboxes u
  JOIN ingest_mailboxes f ON f.id = u.via_mailbox_id AND f.owner_kind = 'forward'
  JOIN email_addresses a ON a.record_kind = u.owner_kind AND a.record_id = u.owner_id
 WHERE u.owner_kind IN ('user', 'queue') AND u.owner_id <> '' AND u.enabled AND u.approved
"""


#: Forwarders whose mailbox is not approved (yet): their forwards are held, not refused.
_UNAPPROVED = """
SELECT f.id::text, btrim(u.address),
       CASE WHEN u.approval_at IS NULL THEN 'pending approval' ELSE 'rejected' END
  FROM ingest_mailboxes u
  JOIN ingest_mailboxes f ON f.id = u.via_mailbox_id AND f.owner_kind = 'forward'
 WHERE u.owner_kind IN ('user', 'queue') AND u.owner_id <> '' AND u.enabled AND NOT u.approved
"""

_UNCHECKED = """
SELECT id::text FROM ingest_mailboxes WHERE owner_kind = 'forward' AND NOT check_auth_results
"""


@dataclass(frozen=True)
class ForwardMailboxes:
    """What unwrap knows about forward mailboxes: who forwards to each, which skip the
    Authentication-Results check."""

    forwarders: Forwarders
    unchecked: frozenset[str] = frozenset()
    #: forward mailbox id -> {address of a forwarder not approved -> "pending approval" or
    #: "rejected"}: such forwards are held (dead-lettered forwarder_not_approved), not refused
    unapproved: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def load_forward_mailboxes(conn: psycopg.Connection) -> ForwardMailboxes:
    with conn.transaction():  # one snapshot (load_forwarders' transaction nests in it)
        unchecked = frozenset(r[0] for r in conn.execute(_UNCHECKED).fetchall())
        unapproved: dict[str, dict[str, str]] = {}
        for box, address, state in conn.execute(_UNAPPROVED).fetchall():
            unapproved.setdefault(box, {})[ascii_lower(address)] = state
        return ForwardMailboxes(load_forwarders(conn), unchecked, unapproved)


def load_forwarders(conn: psycopg.Connection) -> Forwarders:
    """The whole forwarder table, read in one transaction (a consistent snapshot)."""
    table: dict[str, dict[str, Forwarder | None]] = {}
    with conn.transaction():
        rows = conn.execute(_MAILBOX_ADDRESSES).fetchall()
        if conn.execute("SELECT to_regclass('email_addresses') IS NOT NULL").fetchone() == (True,):
            rows += conn.execute(_ALIASES).fetchall()
    for forward_id, stored, kind, owner_id, process_from in rows:
        # ASCII-only folding (not PostgreSQL's lower(), which follows the locale)
        address = ascii_lower(stored)
        who = Forwarder(kind, owner_id, process_from)
        box = table.setdefault(forward_id, {})
        if address in box and box[address] != who:
            # Two owners claim one address for the same forward mailbox: attributing to either
            # could hand one's mail to the other, so the address is trusted for neither.
            log.error("forwarder address %s of forward mailbox %s belongs to %s and %s: "
                      "ignored until the configuration is fixed", address, forward_id,
                      box[address] or "several owners", who)
            box[address] = None
        elif address not in box:
            box[address] = who
    return {box: {a: w for a, w in addrs.items() if w is not None}
            for box, addrs in table.items()}


class ForwarderCache(Generic[T]):
    """The forwarder table, re-read when older than ``refresh_s``.

    If a re-read fails (database restarting) the previous table is kept and the error logged:
    a table a minute old is still right for nearly every message, and stopping the stage for it
    would only grow lag. With no table at all yet there is nothing safe to decide with, so the
    failure is a :class:`~mailroom.errors.TransientError` (the runner retries the message).
    """

    def __init__(self, load: Callable[[], T], refresh_s: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._load = load
        self._wall = wall
        self._read_ms = 0  # wall clock of the last successful read
        self._refresh_s = refresh_s
        self._clock = clock
        self._table: T | None = None
        self._loaded_at = 0.0
        self._failed_at: float | None = None  # monotonic time of the last failed read

    def get(self, written_ms: int | None = None) -> T:
        """The table, re-read when older than ``refresh_s`` — or, given ``written_ms`` (when a
        record was written, ms since the epoch), when read before it (:data:`RECHECK_SKEW_MS`)."""
        now = self._clock()
        stale = written_ms is not None and self._read_ms < written_ms + RECHECK_SKEW_MS and (
            self._failed_at is None or now - self._failed_at >= RECHECK_AFTER_FAILURE_S)
        if self._table is not None and now - self._loaded_at < self._refresh_s and not stale:
            return self._table
        read_ms = int(self._wall() * 1000)
        try:
            self._table = self._load()
            self._read_ms = read_ms
            self._failed_at = None
        except (psycopg.Error, TransientError) as exc:
            self._failed_at = now
            if self._table is None:
                raise TransientError(f"cannot read the forwarders: {exc}") from exc
            log.warning("forwarders not refreshed, keeping the table read %.0f s ago: %s",
                        now - self._loaded_at, exc)
            # Try again at the next refresh, not on every message while the database is down.
        self._loaded_at = now
        return self._table
