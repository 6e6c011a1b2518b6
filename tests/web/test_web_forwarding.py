"""The forward mailboxes page, read-only: each forward mailbox with the users' and queues'
mailboxes behind it, the approval of each address (who decided, when, where the mail waits) as
`mailroom mailbox approve|reject` recorded it, its 'process email from', and its forwarding rule
as the records show it (last arrival; silent while the others' mail kept arriving, as `mailroom
rules status` reads it); the mailboxes page shows approval too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from test_web_http import Client
from webseed import Running

from ingest import approval, credentials, store
from ingest.model import Mailbox, OwnerKind, Profile, Protocol, Tls
from mailroom.db import connect

pytestmark = pytest.mark.integration


def arrived(db: psycopg.Connection, forward_id: int, forwarded_by: str, at: datetime) -> None:
    """A stored email that came through the forward mailbox, forwarded by ``forwarded_by`` (the
    rows persist writes for one; the rules status tests seed them the same way)."""
    row = db.execute(
        "INSERT INTO email_activities (dedupe_key, content_hash, direction, copy_kind, "
        "copy_rank, received_at) VALUES (%s, 'h', 'incoming', 'rfc822', 1, %s) RETURNING id",
        (f"{forwarded_by}-{at.isoformat()}", at)).fetchone()
    db.execute("INSERT INTO activity_mailboxes (activity_id, mailbox_id, copy_kind, "
               "forwarded_by) VALUES (%s, %s, 'rfc822', %s)", (row[0], str(forward_id),
                                                                forwarded_by))


def test_forward_mailboxes_show_each_address_behind_them_and_its_approval(
    dashboard: Running,
) -> None:
    s = dashboard.settings
    with connect(s) as db:
        pid = store.add_profile(db, Profile("fwd", Protocol.IMAP, "127.0.0.1", s.imap_port,
                                            tls=Tls.NONE))
        secret = credentials.encrypt(s, "pw")
        fwd = store.add_mailbox(db, Mailbox("crm-forward@acme.example", OwnerKind.FORWARD, pid,
                                            "crm-forward", secret))

        def behind(address: str, kind: OwnerKind, owner: str, approved: bool) -> int:
            return store.add_mailbox(db, Mailbox(
                address, kind, pid, "", secret, owner_id=owner, via_mailbox_id=fwd,
                approved=approved))

        behind("alice@acme.example", OwnerKind.USER, "alice", True)
        behind("bob@acme.example", OwnerKind.USER, "bob", False)  # pending
        carol = behind("carol@acme.example", OwnerKind.USER, "carol", False)
        dave = behind("dave@acme.example", OwnerKind.USER, "dave", True)
        store.set_process_from(db, dave, datetime(2026, 11, 1, 8, 30, tzinfo=UTC))
        now = datetime.now(UTC)
        arrived(db, fwd, "alice", now - timedelta(days=3))  # then nothing: her rule is silent
        arrived(db, fwd, "dave", now - timedelta(minutes=5))
        db.commit()
        approval.decide(db, carol, False, "admin-jo")  # rejected, recorded
    viewer = Client(dashboard.url)
    assert viewer.login(*dashboard.logins["viewer"])[0] == 303
    status, _, page, _ = viewer.request("GET", "/mailboxes/forwarding")
    assert status == 200
    assert "<h2>crm-forward@acme.example</h2>" in page
    rows = {r.split("</td>")[0].removeprefix("<td>"): r
            for r in page.split(f'id="behind-{fwd}"')[1].split("</table>")[0].split("<tr>")[2:]}
    assert set(rows) == {"alice@acme.example", "bob@acme.example", "carol@acme.example",
                         "dave@acme.example"}
    assert "user:alice" in rows["alice@acme.example"]
    assert '"st ok">approved<' in rows["alice@acme.example"]
    assert "3.0 d ago" in rows["alice@acme.example"]
    assert "mail stopped while the others&#x27; continues" in rows["alice@acme.example"]
    assert "5 min ago" in rows["dave@acme.example"]
    assert "mail stopped" not in rows["dave@acme.example"]
    assert "2026-11-01 08:30:00 UTC" in rows["dave@acme.example"]
    assert "the profile&#x27;s" in rows["alice@acme.example"]
    assert '"st warn">pending<' in rows["bob@acme.example"]
    assert "dead-lettered forwarder_not_approved" in rows["bob@acme.example"]
    assert '"st bad">rejected<' in rows["carol@acme.example"]
    assert "by admin-jo" in rows["carol@acme.example"]
    # Read-only: no buttons; approving stays with the command.
    assert "<form" not in page.split("</nav>")[1]
    assert "mailroom mailbox approve|reject" in page

    # The mailboxes page says the same in its Approval column.
    _, _, page, _ = viewer.request("GET", "/")
    row = next(r for r in page.split('id="mailboxes"')[1].split("<tr>")
               if "bob@acme.example" in r)
    assert "pending" in row and "via crm-forward@acme.example" in row
