"""Dead letters: counts by stage and reason, each letter with a *Retry* button."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailroom.db import connect
from mailroom.errors import MailroomError
from mailroom.web import audit
from mailroom.web.accounts import Role
from mailroom.web.data import deadletters as data
from mailroom.web.templates import Html, ago, join, page, post_button, table, tag

if TYPE_CHECKING:
    from mailroom.web.app import Dashboard, Request, Response


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.web.app import Response

    token = request.csrf_token
    operator = request.session is not None and request.session.may(Role.operator)
    try:
        with connect(app.settings) as conn:
            found, counts = data.letters(app.settings, app.codec, conn)
    except MailroomError as exc:
        body = tag("p", f"Dead letters unavailable: {exc}", cls="st bad")
        return Response(page("Dead letters", body, current="/dead-letters", who=request.session))
    by_reason = table(
        ("Stage", "Reason", "Letters", ""),
        [(stage, reason, n, post_button("/dead-letters/retry", "Retry all", token,
                                        stage=stage, reason=reason) if operator else "")
         for (stage, reason), n in sorted(counts.items())],
        empty="no dead letters", id="by-reason")
    rows = [
        (v.id, v.stage, v.reason_code, v.reason, v.attempts, v.source,
         ago(v.failed_at) if v.failed_at else "", v.summary,
         ("retried " + ago(v.retried_at)) if v.retried_at else
         (f"round {v.retries + 1}" if v.retries else ""),
         post_button("/dead-letters/retry", "Retry", token, letter=v.id)
         if v.stage != "?" and operator else Html(""))
        for v in found
    ]
    letters = table(("Letter", "Stage", "Reason", "Why", "Attempts", "Source", "Failed",
                     "Payload", "Retries", ""), rows, empty="no dead letters", id="letters")
    body = join([tag("h2", "By stage and reason"), by_reason, tag("h2", "Letters, newest first"),
                 letters])
    return Response(page("Dead letters", body, current="/dead-letters", who=request.session,
                         flash=app.flash(request)))


def retry(app: Dashboard, request: Request) -> Response:
    form = request.form
    letter = form.get("letter") or None
    stage, reason = form.get("stage") or None, form.get("reason") or None
    if not (letter or stage or reason):
        return app.flash_redirect(request, "/dead-letters", "Nothing selected to retry.")
    try:
        n = data.retry(app.settings, app.codec, letter_id=letter, stage=stage, reason=reason)
    except MailroomError as exc:
        return app.flash_redirect(request, "/dead-letters", f"Retry failed: {exc}")
    what = f"dead letter {letter}" if letter else f"{stage}/{reason} dead letters"
    assert request.session is not None
    with connect(app.settings) as conn:
        audit.record(conn, request.session.name, "dead_letter.retry",
                     letter or f"{stage}/{reason}", {"sent": n}, request.address)
        conn.commit()
    return app.flash_redirect(request, "/dead-letters",
                              f"Sent {n} message(s) back ({what}) to their source topics.")
