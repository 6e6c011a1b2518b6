"""Ingest's lag: the mailbox backlog on the mail servers, as ingest last measured it.

Ingest has no consumer group; what it has not fetched yet is mail on the servers. Each pass
records per mailbox folder how many messages lie above its checkpoint and the oldest one's
date (:func:`ingest.store.set_backlog`); this reads it back through ingest's own
:func:`ingest.store.backlog`.
A folder with a backlog is ``lagging``; one whose mailbox is disabled (nothing will fetch it
until an administrator acts) is ``stalled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from ingest import store


@dataclass
class MailboxBacklog:
    mailbox_id: int
    address: str
    folder: str
    backlog: int | None  # None: not measured yet
    oldest: datetime | None
    seconds_behind: float
    enabled: bool
    mailbox_status: str
    status: str


def mailbox_backlog(conn: psycopg.Connection) -> list[MailboxBacklog]:
    """Every measured mailbox folder with its state (ingest's query: its tables)."""
    now = datetime.now(UTC)
    out = []
    for b in store.backlog(conn):
        behind = bool(b.count)
        out.append(MailboxBacklog(
            mailbox_id=b.mailbox_id, address=b.address, folder=b.folder, backlog=b.count,
            oldest=b.oldest,
            seconds_behind=(max(0.0, (now - b.oldest).total_seconds())
                            if behind and b.oldest else 0.0),
            enabled=b.enabled, mailbox_status=b.mailbox_status,
            status="OK" if not behind else ("lagging" if b.enabled else "stalled"),
        ))
    return out
