"""The Mailboxes page's *Approve* and *Reject* buttons (admins): exactly `mailroom mailbox
approve|reject`, decided in the signed-in account's name, audited. Approving a mailbox behind a
forward mailbox also sends its held forwards back to unwrap (mailroom/console/ops/approval.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailroom.console.ops import approval
from mailroom.console.web import audit
from mailroom.errors import MailroomError

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response


def approve(app: Dashboard, request: Request) -> Response:
    return _decide(app, request, approved=True)


def reject(app: Dashboard, request: Request) -> Response:
    return _decide(app, request, approved=False)


def _decide(app: Dashboard, request: Request, *, approved: bool) -> Response:
    assert request.session is not None
    who = f"{request.session.name} (dashboard)"
    mailbox_id = int(request.params["id"])
    try:
        decided = (approval.approve if approved else approval.reject)(app.settings, mailbox_id,
                                                                      who)
    except MailroomError as exc:
        return app.flash_redirect(request, "/", f"Not decided: {exc}")
    m = decided.mailbox
    with app.db() as conn:
        audit.record(conn, request.session.name,
                     "mailbox.approve" if approved else "mailbox.reject", m.address,
                     {"released": decided.released, "problem": decided.problem},
                     request.address)
        conn.commit()
    text = f"{m.address} {'approved' if approved else 'rejected'} by {who}"
    if approved and m.via_mailbox_id is not None:
        text += f"; {decided.released} held forward(s) sent back to unwrap"
    if decided.problem:
        text += f". {decided.problem}"
    return app.flash_redirect(request, "/", text)
