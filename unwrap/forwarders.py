"""Who may forward to which forward mailbox: derived from the mailbox directory, cached.

The attribution check needs ``{forward mailbox id: {forwarder address: Forwarder}}``, and the
forward mailboxes whose operator switched the Authentication-Results check off. The truth is
ingest's configuration: a *user* or *queue* mailbox whose incoming method is "via forward
mailbox X". A queue forwards like a user: its forwards become the queue's mail, routed by the
queue's rules (queue items, cases). Unwrap reads that configuration from the compacted
``mailroom.mailboxes`` topic — never ingest's tables — as the kernel's mailbox directory: the
stage runner reads it before every poll batch and hands the handler's process a copy fresh for
every record of the batch (:mod:`mailroom.stage.mailboxcopy`). The table is derived from those
records (:func:`forward_mailboxes`, pure) whenever the copy changes, never per message.

Which addresses count as the forwarder's: the address of its mailbox (the one the forwarding
rule sends from) and, when the reference records are imported, the user's or queue's own
addresses in ``email_addresses`` (aliases; that table's unique index lets a user or queue
address name only one owner, so an alias cannot attribute mail to two owners). The aliases are
read from PostgreSQL once per :data:`REFRESH_SECONDS` (:class:`ForwarderCache`), and again
before a forward written after the last read is refused or held. Only enabled, approved
mailboxes count: an admin who disables a user's mailbox stops attributing forwards to that user
(such forwards are dead-lettered ``not_a_forwarder`` and can be retried after re-enabling).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import psycopg

from mailroom.errors import TransientError
from mailroom.records.mailbox import MailboxRecord
from unwrap.addresses import ascii_lower
from unwrap.context import Forwarder, Forwarders

T = TypeVar("T")
#: (owner kind, owner id) → the owner's own addresses in the reference records
Aliases = Mapping[tuple[str, str], Sequence[str]]

#: The header a forwarding rule on our own mail server adds to every message it *redirects*
#: (sends on intact, not as an attachment) to a forward mailbox. Its value is the forwarding
#: user's (or queue's) mailbox address, a plain addr-spec such as ``alice@corp.example``. The
#: Sieve script that ``mailroom rules deploy`` writes adds it with ``addheader`` before its
#: ``redirect``; unwrap reads it as a *claim* only, believed under the same fail-closed rules as
#: any forward (``unwrap.redirects``). One name, imported wherever the header is written or read.
FORWARDED_BY_HEADER = "X-Mailroom-Forwarded-By"

log = logging.getLogger(__name__)

#: How old the cached aliases may get. A forward refused or held is judged again with fresh
#: aliases when it was written after the last read (below), so this only bounds how long a
#: change that *removes* an alias takes to apply.
REFRESH_SECONDS = 60.0
#: Before a forward is refused or held, the aliases are read again if they were read before the
#: record was written (plus this margin for clocks that differ between hosts): an alias imported
#: before its forwards were written is then met. Records older than the read (a backlog, a
#: flood) cost no read. (The mailboxes need no such check: the runner's copy is read after the
#: record was, :mod:`mailroom.stage.mailboxcopy`.)
RECHECK_SKEW_MS = 2_000
#: After a read failed (database down), a record's recheck tries again only after this long: a
#: stream of refused forwards must not become one connection attempt each (the table kept is
#: what they are judged by either way).
RECHECK_AFTER_FAILURE_S = 1.0

#: The reference records' addresses of users and queues (aliases a forwarding rule may send from).
_ALIASES = """
SELECT record_kind, record_id, address FROM email_addresses WHERE record_kind IN ('user', 'queue')
"""

#: The owner kinds whose mailboxes may be "via" a forward mailbox.
_FORWARDING_KINDS = ("user", "queue")


@dataclass(frozen=True)
class ForwardMailboxes:
    """What unwrap knows about forward mailboxes: who forwards to each, which skip the
    Authentication-Results check."""

    forwarders: Forwarders
    unchecked: frozenset[str] = frozenset()
    #: forward mailbox id -> {address of a forwarder not approved -> "pending approval" or
    #: "rejected"}: such forwards are held (dead-lettered forwarder_not_approved), not refused
    unapproved: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def load_aliases(conn: psycopg.Connection) -> Aliases:
    """(owner kind, owner id) → the owner's addresses in the reference records (none imported:
    no aliases)."""
    aliases: dict[tuple[str, str], list[str]] = {}
    with conn.transaction():
        if conn.execute("SELECT to_regclass('email_addresses') IS NOT NULL").fetchone() != (True,):
            return {}
        for kind, owner_id, address in conn.execute(_ALIASES).fetchall():
            aliases.setdefault((kind, owner_id), []).append(address)
    return aliases


def forward_mailboxes(mailboxes: Iterable[MailboxRecord],
                      aliases: Aliases | None = None) -> ForwardMailboxes:
    """What unwrap knows about forward mailboxes, from the directory's records."""
    boxes = list(mailboxes)
    forward = {m.mailbox_id for m in boxes if m.owner_kind == "forward"}
    unchecked = frozenset(m.mailbox_id for m in boxes
                          if m.owner_kind == "forward" and not m.check_auth_results)
    rows: list[tuple[str, str, Forwarder]] = []
    unapproved: dict[str, dict[str, str]] = {}
    for m in boxes:
        via = m.via_mailbox_id
        if (m.owner_kind not in _FORWARDING_KINDS or not m.owner_id or not m.enabled
                or via not in forward):
            continue
        assert via is not None
        if not m.approved:  # held, not refused
            unapproved.setdefault(via, {})[ascii_lower(m.address.strip())] = (
                "pending approval" if m.approval_at is None else "rejected")
            continue
        who = Forwarder(m.owner_kind, m.owner_id, m.process_from)
        rows.append((via, m.address.strip(), who))
        rows += [(via, alias, who) for alias in (aliases or {}).get((m.owner_kind, m.owner_id), ())]
    return ForwardMailboxes(forwarders(rows), unchecked, unapproved)


def forwarders(rows: Iterable[tuple[str, str, Forwarder]]) -> Forwarders:
    """{forward mailbox id: {address: Forwarder}} from (forward mailbox id, address, who)."""
    table: dict[str, dict[str, Forwarder | None]] = {}
    for forward_id, stored, who in rows:
        # ASCII-only folding (not a locale's lower())
        address = ascii_lower(stored)
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
    """What the forwarder table is built from besides the mailboxes — the aliases, read from
    PostgreSQL — re-read when older than ``refresh_s``.

    If a re-read fails (the database restarting) the previous read is kept and the error
    logged: aliases a minute old are still right for nearly every message, and stopping the
    stage for them would only grow lag. With nothing read yet there is nothing safe to decide
    with, so the failure is a :class:`~mailroom.errors.TransientError` (the runner retries the
    message).
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
        """What was read, read again when older than ``refresh_s`` — or, given ``written_ms``
        (when a record was written, ms since the epoch), when read before it
        (:data:`RECHECK_SKEW_MS`)."""
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
