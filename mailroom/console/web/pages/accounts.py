"""Accounts for admins: who may log in, with which role, how many sessions; *Disable* (ends
the account's sessions at once) and *Enable*. Adding accounts and setting passwords stay on the
command line (``mailroom web user``), where a password never crosses a web form of someone
else's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailroom.console.web import accounts, audit
from mailroom.console.web.templates import page, post_button, status, table

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    who = request.session
    assert who is not None
    with app.db(autocommit=True) as conn:
        found = accounts.all_accounts(conn)
        live = dict(conn.execute("SELECT account_id, count(*) FROM web_sessions "
                                 "WHERE expires_at > now() GROUP BY 1").fetchall())
    rows = [(a.name, a.role.name, status("enabled" if a.enabled else "disabled"),
             live.get(a.id, 0), a.password_changed_at,
             "" if a.id == who.account_id else post_button(
                 f"/accounts/{a.name}/{'disable' if a.enabled else 'enable'}",
                 "Disable" if a.enabled else "Enable", who.csrf))
            for a in found]
    body = table(("Account", "Role", "State", "Live sessions", "Password changed", ""), rows,
                 empty="no accounts", id="accounts")
    return Response(page("Accounts", body, current="/accounts", who=who,
                         flash=app.flash(request)))


def _set(app: Dashboard, request: Request, enabled: bool) -> Response:
    who = request.session
    assert who is not None
    name = str(request.params["name"])
    with app.db() as conn:
        account = accounts.find(conn, name)
        if account is None:
            return app.flash_redirect(request, "/accounts", "No such account.")
        if account.id == who.account_id:  # an admin locking itself out needs the command line
            return app.flash_redirect(request, "/accounts", "You cannot disable yourself here.")
        accounts.set_enabled(conn, account, enabled)
        audit.record(conn, who.name, "account.enable" if enabled else "account.disable", name,
                     address=request.address)
        conn.commit()
    word = "enabled" if enabled else "disabled; its sessions ended"
    return app.flash_redirect(request, "/accounts", f"Account {name} {word}.")


def disable(app: Dashboard, request: Request) -> Response:
    return _set(app, request, False)


def enable(app: Dashboard, request: Request) -> Response:
    return _set(app, request, True)
