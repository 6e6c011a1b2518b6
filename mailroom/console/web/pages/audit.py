"""The audit log for admins: every change, newest first (who, what, on what, when, from where)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailroom.console.web import audit
from mailroom.console.web.templates import page, table

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response

LIMIT = 500


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    with app.db(autocommit=True) as conn:
        events = audit.recent(conn, LIMIT)
    rows = [(e.at, e.actor, e.action, e.target,
             "; ".join(f"{k}={v}" for k, v in sorted(e.detail.items())), e.address)
            for e in events]
    body = table(("When", "Who", "What", "On", "Detail", "From"), rows,
                 empty="nothing changed yet", id="audit")
    return Response(page("Audit log", body, current="/audit", who=request.session))
