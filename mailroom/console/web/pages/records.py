"""Recent emails and cases, each with its trace (the events ``mailroom trace`` shows)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from mailroom.console.web.charts import timeline
from mailroom.console.web.data import records as data
from mailroom.console.web.templates import Html, esc, join, link, page, status, table, tag

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response


def _regarding(value: str) -> Html:
    kind, _, ident = value.partition(":")
    if kind == "case" and ident.isdigit():
        return link(f"/cases/{ident}", value)
    return esc(value)


def _flags(e: data.EmailView) -> str:
    flags = ["collision" if e.collision else e.automated,
             "correlation refused" if e.correlation_refused else ""]
    return ", ".join(f for f in flags if f)


def _email_rows(emails: list[data.EmailView]) -> list[tuple[object, ...]]:
    return [
        (link(f"/emails/{e.id}", e.subject or "(no subject)"), e.sender, e.received_at,
         e.mailboxes, e.correlation_method or "new thread", _regarding(e.regarding), _flags(e))
        for e in emails
    ]


LANES = ("ingest", "unwrap", "route", "persist")
EMAIL_HEADERS = ("Subject", "From", "Received", "Mailboxes", "Correlation", "Regarding",
                 "Flags")


def emails(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    refused = request.query.get("refused") == "1"
    with app.db() as conn:
        found = data.refused_emails(conn) if refused else data.recent_emails(conn)
    switch = (link("/emails", "all recent emails") if refused else
              link("/emails?refused=1", "only those whose correlation was refused"))
    body = join([tag("p", switch, cls="muted"), table(
        EMAIL_HEADERS, _email_rows(found), id="emails",
        empty="no refused correlations" if refused else "no emails yet")])
    title = "Refused correlations" if refused else "Recent emails"
    return Response(page(title, body, current="/emails", who=request.session))


def _trace(found: tuple[list[data.TraceStep], str]) -> Html:
    steps, summary = found
    rows = [(s.at, s.stage, s.event,
             "; ".join(f"{k}={v}" for k, v in sorted(s.detail.items())), s.source)
            for s in steps]
    table_html = table(("At", "Stage", "Event", "Detail", "Source"), rows,
                 empty="no trace events for this email", id="trace")
    lanes = sorted({s.stage for s in steps}, key=lambda x: (
        LANES.index(x) if x in LANES else len(LANES), x))
    chart = timeline("The email across the stages (seconds after its first event)", lanes,
                     [(s.at.timestamp(), s.stage, s.event) for s in steps],
                     id="trace-timeline") if steps else Html("")
    return join([tag("p", summary, cls="muted", id="trace-summary"), chart, table_html])


def email(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    with app.db() as conn:
        e = data.email(conn, request.params["id"])
    if e is None:
        return Response(page("No such email", "", who=request.session), 404)
    # Why it did not join the thread its headers named, next to the correlation it got.
    refused = [("Correlation refused", tag("span", e.correlation_refused, cls="st bad",
                                           id="refused"))] if e.correlation_refused else []
    facts = [("Subject", e.subject), ("From", e.sender), ("Message-ID", e.message_id or ""),
             ("Dedupe key", e.dedupe_key), ("Sent", e.sent_at), ("Received", e.received_at),
             ("Copy", e.copy_kind), ("Mailboxes", e.mailboxes),
             ("Correlation", e.correlation_method or "new thread"), *refused,
             ("Regarding", _regarding(e.regarding)),
             ("Flags", _flags(e))]
    steps = app.tracers.story(e.dedupe_key, partial(app.db, autocommit=True))
    dl = tag("dl", join(tag("dt", k) + tag("dd", v) for k, v in facts))
    parties = table(("Role", "Address", "Record", "Outcome"), e.parties, id="parties")
    body = join([dl, tag("h2", "Parties"), parties, tag("h2", "Trace"), _trace(steps)])
    return Response(page(f"Email {e.id}", body, current="/emails", who=request.session))


def cases(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    with app.db() as conn:
        found = data.recent_cases(conn)
    rows = [(link(f"/cases/{c.id}", c.number), c.title, c.customer, c.queue_id,
             status(c.status), c.created_at, c.reopened_count) for c in found]
    body = table(("Case", "Title", "Customer", "Queue", "Status", "Created", "Reopened"),
                 rows, empty="no cases yet", id="cases")
    return Response(page("Recent cases", body, current="/cases", who=request.session))


def case(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    with app.db() as conn:
        c = data.case(conn, request.params["id"])
        mails = data.case_emails(conn, c.id) if c else []
        origin = data.email(conn, c.originating_activity_id) if c and \
            c.originating_activity_id else None
    if c is None:
        return Response(page("No such case", "", who=request.session), 404)
    steps = (app.tracers.story(origin.dedupe_key, partial(app.db, autocommit=True)) if origin
             else ([], ""))
    facts = [("Title", c.title), ("Status", status(c.status)), ("Customer", c.customer),
             ("Queue", c.queue_id), ("Created", c.created_at), ("Reopened", c.reopened_count)]
    body = join([
        tag("dl", join(tag("dt", k) + tag("dd", v) for k, v in facts)),
        tag("h2", "Emails"), table(EMAIL_HEADERS, _email_rows(mails), id="emails"),
        tag("h2", "Trace of the originating email"), _trace(steps),
    ])
    return Response(page(f"Case {c.number}", body, current="/cases", who=request.session))

