"""Load the ReferenceData snapshot: the only I/O behind route's decisions.

One query for every address (with each record's owner and customer) in PostgreSQL; the
mailboxes come from the kernel's mailbox directory (the compacted mailboxes topic ingest
publishes, :mod:`mailroom.mailboxes`), never from ingest's tables. The stage reloads it
periodically; a plan made with an older snapshot is still correct
because what depends on fresh state (correlation, contacts, cases) is a condition persist
evaluates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import psycopg

from mailroom.records.mailbox import MailboxRecord
from route import privacy
from route.reference import AddressMatch, Mailbox, RecordRef, ReferenceData

_ADDRESSES = """
SELECT e.address, e.record_kind, e.record_id,
       coalesce(c.owner_id, a.owner_id, l.owner_id) AS owner_id,
       c.account_id
FROM email_addresses e
LEFT JOIN contacts c ON e.record_kind = 'contact' AND c.id = e.record_id
LEFT JOIN accounts a ON e.record_kind = 'account' AND a.id = e.record_id
LEFT JOIN leads l    ON e.record_kind = 'lead'    AND l.id = e.record_id
ORDER BY e.address, e.record_kind, e.record_id
"""


def mailboxes(records: Iterable[MailboxRecord]) -> dict[str, Mailbox]:
    """Mailbox id → what route knows of it: its address and, for a user's or queue's, owner."""
    return {
        r.mailbox_id: Mailbox(r.mailbox_id, r.address.lower(),
                              RecordRef(r.owner_kind, r.owner_id)
                              if r.owner_kind in ("user", "queue") and r.owner_id else None)
        for r in records
    }


def load(conn: psycopg.Connection, directory: Mapping[str, MailboxRecord]) -> ReferenceData:
    """``directory``: the mailbox directory as last read (mailbox id → record)."""
    addresses: dict[str, list[AddressMatch]] = {}
    with conn.cursor() as cur:
        for address, kind, ident, owner, account in cur.execute(_ADDRESSES):
            record = RecordRef(kind, ident)
            customer = RecordRef("account", account) if account else None
            addresses.setdefault(address, []).append(AddressMatch(record, owner, customer))
    return ReferenceData({a: tuple(m) for a, m in addresses.items()},
                         mailboxes(directory.values()),
                         privacy.load(conn))
