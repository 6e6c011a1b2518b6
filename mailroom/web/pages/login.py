"""Log in with the dashboard secret; log out."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailroom.web import csrf
from mailroom.web.templates import Html, esc, page

if TYPE_CHECKING:
    from mailroom.web.app import Dashboard, Request, Response


def _form(token: str, error: str = "") -> str:
    message = f'<p class="st bad" role="alert">{esc(error)}</p>' if error else ""
    return page("Log in", Html(
        f'<form method="post" action="/login" class="login">{message}'
        f'<input type="hidden" name="csrf" value="{esc(token)}">'
        '<label for="secret">Dashboard secret</label>'
        '<input type="password" id="secret" name="secret" autocomplete="current-password" '
        'autofocus required><button type="submit">Log in</button>'
        '<p class="muted">The secret is <code>web_secret</code> (MAILROOM_WEB_SECRET), or the one '
        '<code>mailroom web</code> printed when it started.</p></form>'))


def _login_page(request: Request, status: int = 200, error: str = "") -> Response:
    from mailroom.web.app import Response

    # Keep a token the browser already holds: a parallel request that lands here (the
    # browser's favicon fetch, a second tab) must not replace the one the open form carries.
    held = request.cookies.get(csrf.PRE_COOKIE, "")
    token = held if re.fullmatch(r"[0-9a-f]{32}", held) else csrf.new_login_token()
    cookie = f"{csrf.PRE_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600"
    return Response(_form(token, error), status, headers=[("Set-Cookie", cookie)])


def show(app: Dashboard, request: Request, _: re.Match[str]) -> Response:
    from mailroom.web.app import redirect

    if request.session:
        return redirect("/")
    return _login_page(request)


def submit(app: Dashboard, request: Request, _: re.Match[str]) -> Response:
    from mailroom.web.app import Response, failed_login_delay, redirect

    if not csrf.valid_login(request.cookies.get(csrf.PRE_COOKIE), request.form.get("csrf")):
        return Response("403 Forbidden: missing or wrong CSRF token (reload the login page)",
                        403, "text/plain; charset=utf-8")
    if not app.sessions.check_secret(request.form.get("secret", "")):
        failed_login_delay()
        return _login_page(request, 403, "Wrong secret.")
    return redirect("/", ("Set-Cookie", app.sessions.cookie_header(app.sessions.issue())))


def logout(app: Dashboard, request: Request, _: re.Match[str]) -> Response:
    from mailroom.web.app import redirect

    return redirect("/login", ("Set-Cookie", app.sessions.cookie_header("", max_age=0)))
