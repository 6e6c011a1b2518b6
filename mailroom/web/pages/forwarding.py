"""The forward mailboxes, read-only: per forward mailbox, every user's and queue's mailbox
behind it — the approval of its address (who decided and when, and where its mail waits while
it is not approved) and its last arrival. Approving and rejecting stay with `mailroom mailbox
approve|reject`; the page only shows what they decided."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mailroom.web.data import mailboxes as data
from mailroom.web.data.volume import VolumeSnapshot
from mailroom.web.templates import Html, ago, duration, join, link, page, status, table, tag

if TYPE_CHECKING:
    from mailroom.web.app import Dashboard, Request, Response


APPROVAL_CLASS = {"approved": "st ok", "pending": "st warn", "rejected": "st bad"}


def approval(m: data.MailboxView) -> Html:
    """approved / pending / rejected, with who decided and when."""
    who = f" by {m.approval_by}" if m.approval_by else ""
    when = f" {ago(m.approval_at)}" if m.approval_at else ""
    return join([tag("span", m.approval, cls=APPROVAL_CLASS.get(m.approval, "st warn")),
                 f"{who}{when}"])


def last_arrival(snap: VolumeSnapshot, address: str) -> str:
    """The end of the last window with mail for this address, as the stats app counted it."""
    if snap.error or snap.arrival_window is None:
        return "not counted"
    with_mail = [start for start, n in snap.arrivals.get(address.lower(), {}).items() if n]
    if not with_mail:
        return "none counted"
    end = (max(with_mail) + snap.arrival_window.size_ms) / 1000
    now = time.time()
    return "in the current window" if end > now else f"{duration(now - end)} ago"


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.web.app import Response

    with app.db(autocommit=True) as conn:
        boxes = data.mailboxes(conn)
    snap = app.volume.snapshot()
    forwards = [m for m in boxes if m.kind == "forward"]
    parts = [tag("p", join([
        "Each forward mailbox and the users' and queues' mailboxes whose mail it receives "
        "(forwarded as attachments). Approve or reject an address with ",
        tag("code", "mailroom mailbox approve|reject ADDRESS"), "; ",
        link("/mailboxes/arrivals", "arrivals over time"), "."]), cls="muted")]
    if not forwards:
        parts.append(tag("p", "no forward mailboxes", cls="muted", id="no-forwards"))
    for f in forwards:
        behind = [m for m in boxes if m.via_id == f.id]
        rows = [(m.address, m.owner, approval(m), last_arrival(snap, m.address),
                 status(m.status), m.approval_gap) for m in behind]
        parts += [
            tag("h2", f.address),
            tag("p", join([approval(f), f" · {f.status} · last poll ",
                           ago(f.last_poll) if f.last_poll else "never"]), cls="muted"),
            table(("Mailbox", "Owner", "Approval", "Last arrival", "Status", "Waiting mail"),
                  rows, empty="no mailbox forwards to it yet", id=f"behind-{f.id}")]
    return Response(page("Forward mailboxes", join(parts), current="/",
                         who=request.session))
