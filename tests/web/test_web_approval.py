"""The Mailboxes page's Approve and Reject buttons: admins only, exactly `mailroom mailbox
approve|reject` in the signed-in account's name, audited — run as the dashboard's own role."""

from __future__ import annotations

import pytest
from test_web_http import Client
from webseed import Running

from ingest import credentials, store
from ingest.model import Mailbox, OwnerKind, Profile, Protocol, Tls
from mailroom.db import connect

pytestmark = pytest.mark.integration


def test_admins_approve_and_reject_from_the_mailboxes_page(dashboard: Running) -> None:
    s = dashboard.settings
    with connect(s) as db:
        pid = store.add_profile(db, Profile("ap", Protocol.IMAP, "127.0.0.1", s.imap_port,
                                            tls=Tls.NONE))
        secret = credentials.encrypt(s, "pw")
        pending = store.add_mailbox(db, Mailbox("new-hire@acme.example", OwnerKind.USER, pid,
                                                "new-hire", secret, approved=False))
        other = store.add_mailbox(db, Mailbox("stranger@acme.example", OwnerKind.USER, pid,
                                              "stranger", secret, approved=False))
        db.commit()
    admin, viewer = Client(dashboard.url), Client(dashboard.url)
    assert admin.login(*dashboard.admin)[0] == 303
    assert viewer.login(*dashboard.logins["viewer"])[0] == 303

    _, _, page, _ = viewer.request("GET", "/")
    assert f"/mailboxes/{pending}/approve" not in page  # viewers see the state, no buttons
    assert viewer.request("POST", f"/mailboxes/{pending}/approve",
                          {"csrf": viewer.csrf()})[0] == 403
    _, _, page, _ = admin.request("GET", "/")
    assert f'action="/mailboxes/{pending}/approve"' in page
    assert f'action="/mailboxes/{pending}/reject"' in page

    status, headers, _, _ = admin.request("POST", f"/mailboxes/{pending}/approve",
                                          {"csrf": admin.csrf()})
    assert status == 303
    assert "new-hire@acme.example approved by" in admin.request("GET", headers["Location"])[2]
    assert admin.request("POST", f"/mailboxes/{other}/reject", {"csrf": admin.csrf()})[0] == 303

    admin_name = dashboard.admin[0]
    with connect(s) as db:
        approved, rejected = store.mailbox(db, pending), store.mailbox(db, other)
        audit = db.execute("SELECT action, target FROM web_audit WHERE action LIKE 'mailbox.%' "
                           "ORDER BY id").fetchall()
    assert (approved.approval, approved.approval_by) == ("approved", f"{admin_name} (dashboard)")
    assert (rejected.approval, rejected.approval_by) == ("rejected", f"{admin_name} (dashboard)")
    assert audit == [("mailbox.approve", "new-hire@acme.example"),
                     ("mailbox.reject", "stranger@acme.example")]
    _, _, page, _ = admin.request("GET", "/")
    assert f"/mailboxes/{pending}/approve" not in page  # decided: no more buttons
    assert f'action="/mailboxes/{other}/approve"' in page  # a rejection can be undone
