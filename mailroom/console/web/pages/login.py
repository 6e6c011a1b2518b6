"""Log in with an account name and its password; log out (the session is deleted)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from mailroom.console.web import accounts, audit, csrf, sessions
from mailroom.console.web.templates import Html, esc, page

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response

log = logging.getLogger(__name__)

NOTES = {"password-changed": "Password changed: every session of the account has ended; log in "
                             "with the new one.",
         "logged-out": "Logged out."}


def _form(token: str, error: str = "", note: str = "", name: str = "") -> Html:
    message = f'<p class="st bad" role="alert">{esc(error)}</p>' if error else ""
    if note:
        message += f'<p class="flash" role="status">{esc(note)}</p>'
    return page("Log in", Html(
        f'<form method="post" action="/login" class="login">{message}'
        f'<input type="hidden" name="csrf" value="{esc(token)}">'
        '<label for="account">Account</label>'
        f'<input type="text" id="account" name="account" value="{esc(name)}" '
        'autocomplete="username" autocapitalize="none" maxlength="64" required autofocus>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" '
        'autocomplete="current-password" required><button type="submit">Log in</button>'
        '<p class="muted">Accounts are made with <code>mailroom web user add</code>.</p>'
        '</form>'))


def _login_page(request: Request, status: int = 200, error: str = "", name: str = ""
                ) -> Response:
    from mailroom.console.web.app import Response

    # Keep a token the browser already holds: a parallel request that lands here (the
    # browser's favicon fetch, a second tab) must not replace the one the open form carries.
    token = csrf.login_token(request.cookies.get(csrf.PRE_COOKIE)) or csrf.new_login_token()
    secure = "; Secure" if request.secure else ""
    cookie = (f"{csrf.PRE_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; "
              f"Max-Age=3600{secure}")
    note = NOTES.get(request.query.get("note", ""), "")
    return Response(_form(token, error, note, name), status, headers=[("Set-Cookie", cookie)])


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import redirect

    held = request.cookies.get(sessions.COOKIE)
    if held:  # without a cookie (a first visit, a health probe) no database is asked
        with app.db(autocommit=True) as conn:
            if sessions.lookup(conn, held):
                return redirect("/")
    return _login_page(request)


def submit(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import plain, redirect

    if not csrf.valid_login(request.cookies.get(csrf.PRE_COOKIE), request.form.get("csrf")):
        return plain(403, "403 Forbidden: missing or wrong CSRF token (reload the login page)")
    name = request.form.get("account", "").strip().lower()[:64]
    password = request.form.get("password", "")
    with app.db(autocommit=True) as conn:
        attempt = app.throttle.attempt(conn, name, request.address)
        if attempt.refused:
            # Refused before the password is looked at: guessing stays slow, and costs no
            # hashing.
            return _login_page(request, 429, "Too many failed logins for this account or "
                               f"from this address: try again in "
                               f"{math.ceil(attempt.wait_s / 60)} min.", name)
        account = accounts.authenticate(conn, app.passwords, name, password)
        if account is None:  # the attempt stays counted as a failure
            log.warning("web: failed login for %r from %s", name, request.address)
            return _login_page(request, 403, "Wrong account name or password.", name)
        app.throttle.succeeded(conn, attempt)
        with conn.transaction():
            token = sessions.create(conn, account.id, request.address)
            audit.record(conn, account.name, "login", address=request.address)
    return redirect("/", ("Set-Cookie", sessions.cookie(token, secure=request.secure)))


def logout(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import redirect

    assert request.session is not None  # the gate let only a live session through
    with app.db() as conn:
        sessions.revoke(conn, request.session)
        audit.record(conn, request.session.name, "logout", address=request.address)
        conn.commit()
    return redirect("/login?note=logged-out",
                    ("Set-Cookie", sessions.cookie("", secure=request.secure, max_age=0)))
