"""Mailboxes as the dashboard lists them, and the *Test* button (ingest's own mailbox test)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from ingest import probe, store
from mailroom.console.ops.ingest_backlog import mailbox_backlog
from mailroom.settings import Settings


@dataclass
class MailboxView:
    id: int
    address: str
    kind: str  # user | queue | forward
    method: str  # "direct" or "via <forward mailbox address>"
    enabled: bool
    status: str
    status_detail: str
    last_poll: datetime | None
    backlog: int | None  # messages on the server not fetched yet (None: not measured)
    seconds_behind: float
    last_error: str
    last_test_ok: bool | None
    last_test_detail: str
    last_test_at: datetime | None
    owner: str = ""  # "user:ID", "queue:ID" or "forward:ID"
    via_id: int | None = None  # the forward mailbox it arrives through
    # Approval of the address (ingest's): approved | pending | rejected, who decided and when,
    # and where the mail waits while it is not approved ('' when approved).
    approval: str = "approved"
    approval_by: str = ""
    approval_at: datetime | None = None
    approval_gap: str = ""
    process_from: datetime | None = None  # 'process email from' (None: the profile's)


def mailboxes(conn: psycopg.Connection) -> list[MailboxView]:
    boxes = store.mailboxes(conn)
    address = {m.id: m.address for m in boxes}
    backlog: dict[int, tuple[int | None, float]] = {}
    for b in mailbox_backlog(conn):
        count, behind = backlog.get(b.mailbox_id, (None, 0.0))
        if b.backlog is not None:
            count = (count or 0) + b.backlog
        backlog[b.mailbox_id] = (count, max(behind, b.seconds_behind))
    # Last poll: the latest status change or checkpoint write; a mailbox still 'new' never ran.
    polled = dict(conn.execute(
        "SELECT m.id, GREATEST(m.status_at, MAX(c.updated_at)) FROM ingest_mailboxes m "
        "LEFT JOIN ingest_checkpoints c ON c.mailbox_id = m.id "
        "WHERE m.status <> 'new' GROUP BY m.id"
    ).fetchall())
    out = []
    for m in boxes:
        assert m.id is not None
        count, behind = backlog.get(m.id, (None, 0.0))
        via = m.via_mailbox_id
        out.append(MailboxView(
            id=m.id, address=m.address, kind=m.owner_kind.value,
            method="direct" if via is None else f"via {address.get(via, f'mailbox {via}')}",
            enabled=m.enabled, status=m.status if m.enabled else "disabled",
            status_detail=m.status_detail, last_poll=polled.get(m.id), backlog=count,
            seconds_behind=behind,
            last_error=m.status_detail if m.status in {"retrying", "disabled"} else "",
            last_test_ok=m.last_test_ok, last_test_detail=m.last_test_detail,
            last_test_at=m.last_test_at, owner=f"{m.owner_kind.value}:{m.owner_id}",
            via_id=via, approval=m.approval, approval_by=m.approval_by,
            approval_at=m.approval_at, approval_gap=m.approval_gap() or "",
            process_from=m.process_from,
        ))
    return out


def test_mailbox(settings: Settings, conn: psycopg.Connection, mailbox_id: int) -> probe.TestResult:
    """Exactly ``mailroom mailbox test``: log in, count the folders, record the result."""
    m = store.mailbox(conn, mailbox_id)
    p = store.profile(conn, m.profile_id)
    result = probe.test(settings, p, m)
    store.record_test(conn, mailbox_id, result.ok, result.detail)
    conn.commit()
    return result


@dataclass(frozen=True)
class RuleView:
    """A user's (or queue's) forwarding rule as the records show it: when mail last arrived
    through it, and whether it fell silent while the others' kept arriving (``rules status``'
    own reading; whether the rule is deployed needs a login to the user's server, which a page
    view does not make)."""

    last_arrival: datetime | None
    silent: bool


def forwarding_rules(conn: psycopg.Connection, forward_id: int) -> dict[str, RuleView]:
    """{address behind the forward mailbox: its rule's view}."""
    from mailroom.console.ops import rule_deploy, rule_status

    forward = store.mailbox(conn, forward_id)
    users = rule_deploy.forwarders(conn, forward)
    arrivals = rule_status.last_arrivals(conn, forward)
    silent = {s.address for s in rule_status.silent(users, arrivals)}
    return {m.address: RuleView(rule_status.last_arrival(arrivals, m), m.address in silent)
            for m in users}
