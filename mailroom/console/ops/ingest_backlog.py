"""Ingest's lag: the mailbox backlog on the mail servers, as ingest last measured it.

Ingest has no consumer group; what it has not fetched yet is mail on the servers. Each pass
records per mailbox folder how many messages lie above its checkpoint and the oldest one's
date (``ingest_checkpoints.backlog`` / ``backlog_oldest``, :func:`ingest.store.set_backlog`).
A folder with a backlog is ``lagging``; one whose mailbox is disabled (nothing will fetch it
until an administrator acts) is ``stalled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg


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
    rows = conn.execute(
        "SELECT m.id, m.address, c.folder, c.backlog, c.backlog_oldest, m.enabled, m.status "
        "FROM ingest_checkpoints c JOIN ingest_mailboxes m ON m.id = c.mailbox_id "
        "ORDER BY m.address, c.folder"
    ).fetchall()
    now = datetime.now(UTC)
    out = []
    for mid, address, folder, backlog, oldest, enabled, status in rows:
        behind = bool(backlog)
        out.append(MailboxBacklog(
            mailbox_id=int(mid), address=address, folder=folder, backlog=backlog, oldest=oldest,
            seconds_behind=max(0.0, (now - oldest).total_seconds()) if behind and oldest else 0.0,
            enabled=bool(enabled), mailbox_status=str(status),
            status="OK" if not behind else ("lagging" if enabled else "stalled"),
        ))
    return out
