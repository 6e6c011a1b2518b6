"""Dead letters: counts by stage and reason, over time (charts), each letter with a *Retry*
button."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

from mailroom.console.web import audit
from mailroom.console.web.accounts import Role
from mailroom.console.web.charts import Stack, bar_chart
from mailroom.console.web.data import deadletters as data
from mailroom.console.web.templates import Html, ago, join, page, post_button, table, tag
from mailroom.errors import MailroomError

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response


# (span, bucket, name): by hour over the last day, by day over the last two weeks.
SPANS = ((86400, 3600, "day"), (14 * 86400, 86400, "two weeks"))


def over_time(failures: list[tuple[datetime, str]], now: float, span_s: int, bucket_s: int,
              name: str) -> Html:
    """Dead letters per bucket, stacked by stage/reason (buckets aligned to UTC)."""
    first = (int(now - span_s) // bucket_s + 1) * bucket_s
    starts = list(range(first, int(now) + 1, bucket_s))
    counts: dict[str, list[int]] = {}
    for at, reason in sorted(failures, key=lambda f: f[1]):
        t = at.timestamp()
        if first <= t <= now:
            counts.setdefault(reason, [0] * len(starts))[int((t - first) // bucket_s)] += 1
    per = "hour" if bucket_s == 3600 else "day"
    return bar_chart(f"Dead letters per {per} by stage/reason, last {name}",
                     Stack([float(s) for s in starts], bucket_s, counts), first, now,
                     id=f"dead-letters-{per}")


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    token = request.csrf_token
    operator = request.session is not None and request.session.may(Role.operator)
    try:
        read = app.letters.read()  # the topic first: no connection held while Kafka answers
        with app.db() as conn:
            found, counts, failures = data.letters(app.settings, app.codec, conn, read)
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
    now = time.time()
    body = join([tag("h2", "By stage and reason"), by_reason,
                 tag("div", join([over_time(failures, now, span, bucket, name)
                                  for span, bucket, name in SPANS]), cls="charts"),
                 tag("h2", "Letters, newest first"), letters])
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
        app.letters.invalidate()  # the page after the redirect shows what changed
    except MailroomError as exc:
        return app.flash_redirect(request, "/dead-letters", f"Retry failed: {exc}")
    what = f"dead letter {letter}" if letter else f"{stage}/{reason} dead letters"
    assert request.session is not None
    with app.db() as conn:
        audit.record(conn, request.session.name, "dead_letter.retry",
                     letter or f"{stage}/{reason}", {"sent": n}, request.address)
        conn.commit()
    return app.flash_redirect(request, "/dead-letters",
                              f"Sent {n} message(s) back ({what}) to their source topics.")
