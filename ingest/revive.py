"""Re-enabling mailboxes an outage disabled, once their server answers a login-free probe.

Only mailboxes disabled as ``transient`` (many failures in a row, none saying the credentials
or folders are wrong) are probed; a permanent disable waits for an administrator. A process
probes only the mailboxes it serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Set as AbstractSet

import psycopg

from ingest import probe, store
from ingest.model import Mailbox

log = logging.getLogger(__name__)


def revive(conn: psycopg.Connection, mine: AbstractSet[int] | None,
           announce: Callable[[Mailbox, str], None]) -> list[int]:
    """Probe each outage-disabled mailbox (of ``mine``; None: every one) and enable those
    whose server answers; ``announce`` publishes the change. Returns their ids."""
    rows = conn.execute(
        "SELECT id FROM ingest_mailboxes WHERE NOT enabled AND disabled_kind = 'transient' "
        "AND via_mailbox_id IS NULL"
    ).fetchall()
    ids = [int(r[0]) for r in rows if mine is None or int(r[0]) in mine]
    profiles: dict[int, bool] = {}  # profile id -> reachable (one probe per server per round)
    revived: list[int] = []
    for m in store.mailboxes(conn, ids=ids) if ids else []:
        assert m.id is not None
        if m.profile_id not in profiles:
            profiles[m.profile_id] = probe.reachable(store.profile(conn, m.profile_id)) is None
        if profiles[m.profile_id]:
            store.set_enabled(conn, m.id, True)
            conn.commit()
            announce(m, m.status)
            log.info("mailbox=%s re-enabled: its server answers again", m.address)
            revived.append(m.id)
    conn.commit()
    return revived
