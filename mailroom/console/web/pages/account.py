"""One's own account: name, role, live sessions; change the password (ends every session)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailroom.console.web import accounts, audit, sessions
from mailroom.console.web.templates import Html, esc, join, page, tag
from mailroom.errors import ConfigError

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response


def _form(token: str) -> Html:
    fields = join(Html(
        f'<label for="{name}">{esc(label)}</label><input type="password" id="{name}" '
        f'name="{name}" autocomplete="{auto}" required>')
        for name, label, auto in (("current", "Current password", "current-password"),
                                  ("new", "New password", "new-password"),
                                  ("repeat", "New password again", "new-password")))
    return Html(f'<form method="post" action="/account/password" class="login">'
                f'<input type="hidden" name="csrf" value="{esc(token)}">{fields}'
                f'<button type="submit">Change password</button>'
                f'<p class="muted">At least {accounts.MIN_PASSWORD} characters. Every session '
                'of this account ends, this one too.</p></form>')


def show(app: Dashboard, request: Request, error: str = "", status: int = 200) -> Response:
    from mailroom.console.web.app import Response

    who = request.session
    assert who is not None
    with app.db(autocommit=True) as conn:
        live = conn.execute("SELECT count(*) FROM web_sessions WHERE account_id = %s AND "
                            "expires_at > now()", (who.account_id,)).fetchone()[0]
    facts = [("Account", who.name), ("Role", who.role.name), ("Live sessions", live)]
    body = join([
        tag("dl", join(tag("dt", k) + tag("dd", v) for k, v in facts), id="account"),
        tag("h2", "Change password"),
        tag("p", error, cls="st bad", role="alert") if error else Html(""),
        _form(who.csrf)])
    return Response(page("Account", body, current="/account", who=who,
                         flash=app.flash(request)), status)


def change_password(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import redirect

    who = request.session
    assert who is not None
    form = request.form
    if form.get("new", "") != form.get("repeat", ""):
        return show(app, request, "The new passwords differ.", 400)
    with app.db(autocommit=True) as conn:
        # The current password is a password guess like any other.
        attempt = app.throttle.attempt(conn, who.name, request.address)
        if attempt.refused:
            return show(app, request, "Too many wrong passwords: try again later.", 429)
        account = accounts.authenticate(conn, app.passwords, who.name, form.get("current", ""))
        if account is None:  # the attempt stays counted as a failure
            return show(app, request, "The current password is wrong.", 403)
        app.throttle.succeeded(conn, attempt)
        try:
            with conn.transaction():
                accounts.set_password(conn, app.passwords, account, form.get("new", ""))
                audit.record(conn, who.name, "account.password", who.name,
                             address=request.address)
        except ConfigError as exc:
            return show(app, request, str(exc), 400)
    return redirect("/login?note=password-changed",
                    ("Set-Cookie", sessions.cookie("", secure=request.secure, max_age=0)))
