""""Why wasn't this email tracked?": search by Message-ID, sender, subject words and day; the
answer says where the email ended up (:mod:`mailroom.console.web.data.search`)."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import TYPE_CHECKING

from mailroom.console.web.accounts import Role
from mailroom.console.web.data import mailboxes as mailbox_data
from mailroom.console.web.data import search as data
from mailroom.console.web.pages.records import EMAIL_HEADERS, _email_rows
from mailroom.console.web.templates import (
    Html,
    ago,
    esc,
    join,
    page,
    post_button,
    status,
    table,
    tag,
)

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response

MAX_QUERY = 300


def _form(query: str, day: str) -> Html:
    return Html(
        '<form method="get" action="/search" class="search">'
        '<label for="q">Message-ID, sender address or words of the subject</label> '
        f'<input type="search" id="q" name="q" value="{esc(query)}" maxlength="{MAX_QUERY}" '
        'required size="50"> <label for="date">day (UTC, optional)</label> '
        f'<input type="date" id="date" name="date" value="{esc(day)}"> '
        '<button type="submit">Search</button></form>')


def _verdicts(found: data.Found) -> Html:
    rows = []
    for v in found.verdicts:
        answer = {"skipped": "not tracked: skipped", "parked": "waiting: parked until its "
                  "parent arrives", "persisted": "tracked"}.get(v.event, "not at persist yet")
        path = " → ".join(f"{stage} {event}" for _, stage, event in v.stage_events)
        rows.append((v.key, v.message_id or "", status(v.event or "in the pipeline"), answer,
                     v.reason, v.at, path))
    return table(("Dedupe key", "Message-ID", "Persist", "Answer", "Reason", "At", "Path"),
                 rows, empty="no trace events under this name", id="verdicts")


def _letters(found: data.Found, request: Request) -> Html:
    operator = request.session is not None and request.session.may(Role.operator)
    rows = [(v.id, v.stage, v.reason_code, v.reason, v.failed_at, v.summary,
             post_button("/dead-letters/retry", "Retry", request.csrf_token, letter=v.id)
             if operator else "") for v in found.letters]
    return table(("Letter", "Stage", "Reason", "Why", "Failed", "Payload", ""), rows,
                 empty="no dead letter matches", id="search-letters")


def _never_arrived(app: Dashboard, found: data.Found) -> Html:
    with app.db(autocommit=True) as conn:
        boxes = mailbox_data.mailboxes(conn)
    since = ""
    if found.day is not None:
        since = f"polled after {found.day:%Y-%m-%d}"
    rows = [(m.address, status(m.status), ago(m.last_poll) if m.last_poll else "never",
             m.last_poll, ("yes" if m.last_poll and m.last_poll.date() > found.day else "no")
             if found.day else "", m.last_error) for m in boxes]
    return join([
        tag("p", "Nothing stored, skipped or dead-lettered matches: it may never have "
                 "arrived in a monitored mailbox (or is still on its way). The mailboxes' last "
                 "polls:", cls="st warn", id="never-arrived"),
        table(("Mailbox", "Status", "Last poll", "At", since or "—", "Last error"), rows,
              empty="no mailboxes", id="last-polls")])


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    query = request.query.get("q", "").strip()[:MAX_QUERY]
    day_text = request.query.get("date", "").strip()
    parts = [_form(query, day_text)]
    day = None
    if day_text:
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            parts.append(tag("p", f"Not a day: {day_text} (use YYYY-MM-DD)", cls="st bad"))
            query = ""
    if query:
        found = data.search(app.letters.read, app.codec, partial(app.db, autocommit=True),
                            query, day)
        parts += [tag("h2", "Stored"),
                  table(EMAIL_HEADERS, _email_rows(found.activities),
                        empty="no stored email matches", id="search-emails")]
        if data.looks_like_message_id(query):
            parts += [tag("h2", "Skipped, parked or on its way"), _verdicts(found)]
        else:
            parts.append(tag("p", "Skips and parked emails are found by Message-ID.",
                             cls="muted"))
        parts.append(tag("h2", "Dead letters"))
        parts.append(tag("p", f"Dead letters unavailable: {found.letters_error}", cls="st bad")
                     if found.letters_error else _letters(found, request))
        if found.nothing:
            parts += [tag("h2", "Never arrived?"), _never_arrived(app, found)]
    return Response(page("Why wasn't this email tracked?", join(parts), current="/search",
                         who=request.session, flash=app.flash(request)))
