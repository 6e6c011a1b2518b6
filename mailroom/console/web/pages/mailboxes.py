"""Mailboxes: kind, method, status, last poll, backlog, last error, and a *Test* button."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailroom.console.web import audit
from mailroom.console.web.accounts import Role
from mailroom.console.web.data import mailboxes as data
from mailroom.console.web.pages.forwarding import approval
from mailroom.console.web.templates import (
    Html,
    ago,
    duration,
    esc,
    join,
    link,
    page,
    post_button,
    status,
    table,
    tag,
)

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response


def _backlog(m: data.MailboxView) -> str:
    if m.backlog is None:
        return "not measured"
    return f"{m.backlog}" + (f" ({duration(m.seconds_behind)} behind)" if m.backlog else "")


def _test(m: data.MailboxView) -> Html:
    if m.last_test_at is None:
        return Html("")
    word = status("Success" if m.last_test_ok else "Failure")
    return Html(f"{word} {esc(ago(m.last_test_at))}: {esc(m.last_test_detail)}")


def _decide(m: data.MailboxView, csrf: str) -> Html:
    """Approve (and Reject, while pending) for a mailbox not approved: admins only."""
    if m.approval == "approved":
        return Html("")
    buttons = [post_button(f"/mailboxes/{m.id}/approve", "Approve", csrf)]
    if m.approval == "pending":
        buttons.append(post_button(f"/mailboxes/{m.id}/reject", "Reject", csrf))
    return join([" ", *buttons])


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    with app.db() as conn:
        boxes = data.mailboxes(conn)
    operator = request.session is not None and request.session.may(Role.operator)
    admin = request.session is not None and request.session.may(Role.admin)
    rows = [
        (m.address, m.kind, m.method, join([approval(m), _decide(m, request.csrf_token)])
         if admin else approval(m), status(m.status),
         ago(m.last_poll) if m.last_poll else "never", _backlog(m), m.last_error, _test(m),
         post_button(f"/mailboxes/{m.id}/test", "Test", request.csrf_token)
         if operator else "")
        for m in boxes
    ]
    body = table(("Mailbox", "Kind", "Method", "Approval", "Status", "Last poll", "Backlog",
                  "Last error", "Last test", ""), rows, empty="no mailboxes (mailroom mailbox add)",
                 id="mailboxes")
    body = tag("p", join([link("/mailboxes/arrivals", "Arrivals per mailbox over time"), " · ",
                          link("/mailboxes/forwarding", "Forward mailboxes")])) + body
    return Response(page("Mailboxes", body, current="/", who=request.session,
                         flash=app.flash(request)))


def test(app: Dashboard, request: Request) -> Response:
    with app.db() as conn:
        mailbox = next((m for m in data.mailboxes(conn) if m.id == int(request.params["id"])), None)
        if mailbox is None:
            return app.flash_redirect(request, "/", "No such mailbox.")
        result = data.test_mailbox(app.settings, conn, mailbox.id)
        assert request.session is not None
        audit.record(conn, request.session.name, "mailbox.test", mailbox.address,
                     {"ok": result.ok, "detail": result.detail}, request.address)
        conn.commit()
    word = "Success" if result.ok else "Failure"
    # Post/redirect/get: a reload does not log in to the server again.
    return app.flash_redirect(request, "/",
                              f"Test of {mailbox.address}: {word}: {result.detail}")
