"""The dashboard's pages and the route table :func:`mailroom.console.web.app.build` serves.

Each route names the least role it needs: None is public (the login page only), viewer reads,
operator also repairs (*Test*, *Retry*), admin also reads the audit log and disables or enables
accounts. Every POST behind the
login is checked for the session's CSRF token before the handler runs.
"""

from __future__ import annotations

from mailroom.console.web.accounts import Role
from mailroom.console.web.app import Page
from mailroom.console.web.pages import (
    account,
    accounts,
    approval,
    arrivals,
    audit,
    deadletters,
    forwarding,
    history,
    login,
    mailboxes,
    records,
    search,
    stages,
)

ROUTES = [
    Page("GET", "/login", login.show, None),
    Page("POST", "/login", login.submit, None),
    Page("POST", "/logout", login.logout),
    Page("GET", "/account", account.show),
    Page("POST", "/account/password", account.change_password),
    Page("GET", "/", mailboxes.show),
    Page("POST", "/mailboxes/{id:int}/test", mailboxes.test, Role.operator),
    Page("POST", "/mailboxes/{id:int}/approve", approval.approve, Role.admin),
    Page("POST", "/mailboxes/{id:int}/reject", approval.reject, Role.admin),
    Page("GET", "/mailboxes/arrivals", arrivals.show),
    Page("GET", "/mailboxes/forwarding", forwarding.show),
    Page("GET", "/stages", stages.show),
    Page("GET", "/stages/history", history.show),
    Page("GET", "/dead-letters", deadletters.show),
    Page("POST", "/dead-letters/retry", deadletters.retry, Role.operator),
    Page("GET", "/emails", records.emails),
    Page("GET", "/emails/{id:int}", records.email),
    Page("GET", "/cases", records.cases),
    Page("GET", "/cases/{id:int}", records.case),
    Page("GET", "/search", search.show),
    Page("GET", "/audit", audit.show, Role.admin),
    Page("GET", "/accounts", accounts.show, Role.admin),
    Page("POST", "/accounts/{name}/disable", accounts.disable, Role.admin),
    Page("POST", "/accounts/{name}/enable", accounts.enable, Role.admin),
]
