"""The dashboard's pages and the route table :class:`mailroom.web.app.Dashboard` serves.

Each route is (method, path pattern, handler, public). Only the login page is public; POST
routes that are not public are checked for the session's CSRF token before the handler runs.
"""

from __future__ import annotations

from mailroom.web.pages import deadletters, login, mailboxes, records, stages

ROUTES = [
    ("GET", "/login", login.show, True),
    ("POST", "/login", login.submit, True),
    ("POST", "/logout", login.logout, False),
    ("GET", "/", mailboxes.show, False),
    ("POST", r"/mailboxes/(\d+)/test", mailboxes.test, False),
    ("GET", "/stages", stages.show, False),
    ("GET", "/dead-letters", deadletters.show, False),
    ("POST", "/dead-letters/retry", deadletters.retry, False),
    ("GET", "/emails", records.emails, False),
    (r"GET", r"/emails/(\d+)", records.email, False),
    ("GET", "/cases", records.cases, False),
    ("GET", r"/cases/(\d+)", records.case, False),
]
