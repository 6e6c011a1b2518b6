"""Load the ReferenceData snapshot from PostgreSQL: the only I/O behind route's decisions.

One query for every address (with each record's owner and customer), one for the mailboxes.
The stage reloads it periodically; a plan made with an older snapshot is still correct
because what depends on fresh state (correlation, contacts, cases) is a condition persist
evaluates.
"""

from __future__ import annotations

import psycopg

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

_MAILBOXES = "SELECT id::text, address, owner_kind, owner_id FROM ingest_mailboxes"


def load(conn: psycopg.Connection) -> ReferenceData:
    addresses: dict[str, list[AddressMatch]] = {}
    with conn.cursor() as cur:
        for address, kind, ident, owner, account in cur.execute(_ADDRESSES):
            record = RecordRef(kind, ident)
            customer = RecordRef("account", account) if account else None
            addresses.setdefault(address, []).append(AddressMatch(record, owner, customer))
        mailboxes = {
            mid: Mailbox(mid, address.lower(),
                         RecordRef(kind, owner) if kind in ("user", "queue") and owner else None)
            for mid, address, kind, owner in cur.execute(_MAILBOXES)
        }
    return ReferenceData({a: tuple(m) for a, m in addresses.items()}, mailboxes,
                         privacy.load(conn))
