"""Approving a mailbox's address, and releasing the mail that waited for it.

Dynamics 365 processes a mailbox's mail only once an administrator has approved its email
address; Mailroom does the same, and records who decided and when (``ingest_mailboxes``
``approved``, ``approval_by``, ``approval_at``). While a mailbox is not approved its mail is not
lost, it waits:

* a mailbox ingest polls (direct, or a forward mailbox itself) is simply not polled: the mail
  stays on its server and is fetched from the checkpoint on once approved;
* a user's or queue's mailbox *via* a forward mailbox cannot stop the forward mailbox being
  polled, so unwrap parks each of its forwards as the dead letter ``forwarder_not_approved``
  (the reason names the forwarder as ``<address>``), and ``mailroom mailbox approve`` sends
  exactly those back to unwrap (``mailroom.console.ops.approval``) — a retry, as ``mailroom dlq
  retry`` makes one.
"""

from __future__ import annotations

import psycopg

from ingest import store
from ingest.model import Mailbox


def decide(conn: psycopg.Connection, key: int | str, approved: bool, by: str) -> Mailbox:
    """Record the decision (committed) and return the mailbox as it now is."""
    m = store.mailbox(conn, key)
    assert m.id is not None
    store.set_approval(conn, m.id, approved, by)
    conn.commit()
    return store.mailbox(conn, m.id)
