"""The forward mailboxes, read-only: per forward mailbox, every user's and queue's mailbox
behind it — the approval of its address (who decided and when, and where its mail waits while
it is not approved), its 'process email from', and its forwarding rule as the records show it
(the last arrival through it, and a rule whose mail stopped while the others' kept arriving,
as `mailroom rules status` reads them). Approving, rejecting and deploying rules stay with the
commands; the page only shows what they decided."""

from __future__ import annotations

from datetime import UTC
from functools import partial
from typing import TYPE_CHECKING

from mailroom.console.web.data import mailboxes as data
from mailroom.console.web.templates import Html, ago, join, page, status, table, tag

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response


APPROVAL_CLASS = {"approved": "st ok", "pending": "st warn", "rejected": "st bad"}


def approval(m: data.MailboxView) -> Html:
    """approved / pending / rejected, with who decided and when."""
    who = f" by {m.approval_by}" if m.approval_by else ""
    when = f" {ago(m.approval_at)}" if m.approval_at else ""
    return join([tag("span", m.approval, cls=APPROVAL_CLASS.get(m.approval, "st warn")),
                 f"{who}{when}"])


RULES_MAX_AGE_S = 60.0  # the last arrivals cost a scan of the forward mailbox's records


def rule(view: data.RuleView | None) -> Html:
    if view is not None and view.silent:
        return tag("span", "mail stopped while the others' continues: check the rule",
                   cls="st bad")
    return Html("")


def start(m: data.MailboxView) -> str:
    return f"{m.process_from.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if m.process_from \
        else "the profile's"


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    with app.db(autocommit=True) as conn:
        boxes = data.mailboxes(conn)
        forwards = [m for m in boxes if m.kind == "forward"]
        rules = {f.id: app.drawn.fresh(("forwarding-rules", f.id), RULES_MAX_AGE_S,
                                       partial(data.forwarding_rules, conn, f.id))
                 for f in forwards}
    parts = [tag("p", join([
        "Each forward mailbox and the users' and queues' mailboxes whose mail it receives "
        "(forwarded as attachments). Approve or reject an address with ",
        tag("code", "mailroom mailbox approve|reject ADDRESS"), "; whether each forwarding "
        "rule is deployed: ", tag("code", "mailroom rules status FORWARD-MAILBOX"),
        " (it logs in to the users' server). Last arrivals are at most a minute old."]),
        cls="muted")]
    if not forwards:
        parts.append(tag("p", "no forward mailboxes", cls="muted", id="no-forwards"))
    for f in forwards:
        behind = [m for m in boxes if m.via_id == f.id]
        rows = [(m.address, m.owner, approval(m), start(m),
                 ago(view.last_arrival) if (view := rules[f.id].get(m.address)) else "never",
                 rule(view), status(m.status), m.approval_gap) for m in behind]
        parts += [
            tag("h2", f.address),
            tag("p", join([approval(f), f" · {f.status} · last poll ",
                           ago(f.last_poll) if f.last_poll else "never"]), cls="muted"),
            table(("Mailbox", "Owner", "Approval", "Process email from",
                   "Last arrival through its rule", "Rule", "Status", "Waiting mail"),
                  rows, empty="no mailbox forwards to it yet", id=f"behind-{f.id}")]
    return Response(page("Forward mailboxes", join(parts), current="/",
                         who=request.session))
