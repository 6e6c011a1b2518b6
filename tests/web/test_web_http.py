"""The dashboard over real HTTP on localhost (http.client), on the real stack: login required,
wrong password refused, strict session cookies, roles, CSRF on every POST, strict CSP, mail
content escaped, the audit log."""

from __future__ import annotations

import http.client
import re
from urllib.parse import urlencode, urlsplit

import pytest
import webseed
from webseed import Running

from mailroom.console.web.sessions import COOKIE
from mailroom.db import connect

pytestmark = pytest.mark.integration

PAGES = ["/", "/stages", "/dead-letters", "/emails", "/cases", "/emails/1", "/cases/1",
         "/account", "/audit", "/no-such-page"]


class Client:
    """A tiny browser: keeps cookies, never follows redirects (the tests look at them)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], str, list[str]]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        set_cookies = resp.headers.get_all("Set-Cookie") or []
        for c in set_cookies:
            name, _, rest = c.partition("=")
            value = rest.split(";")[0]
            if "Max-Age=0" in c:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        conn.close()
        return resp.status, resp.headers, text, set_cookies  # type: ignore[return-value]

    def login(self, account: str, password: str, headers: dict[str, str] | None = None
              ) -> tuple[int, dict[str, str], str, list[str]]:
        _, _, page, _ = self.request("GET", "/login", headers=headers)
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token, page
        return self.request("POST", "/login", {"csrf": token[1], "account": account,
                                               "password": password}, headers)

    def csrf(self) -> str:
        _, _, page, _ = self.request("GET", "/")
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found, page
        return found[1]


def test_every_page_needs_login(dashboard: Running) -> None:
    client = Client(dashboard.url)
    for path in PAGES:
        status, headers, _, _ = client.request("GET", path)
        assert (status, headers.get("Location")) == (303, "/login"), path
    for path in ("/mailboxes/1/test", "/dead-letters/retry", "/logout"):
        status, headers, _, _ = client.request("POST", path, {"csrf": "x"})
        assert (status, headers.get("Location")) == (303, "/login"), path
    status, headers, page, _ = client.request("GET", "/login")
    assert status == 200 and 'type="password"' in page
    assert "Mailboxes</a>" not in page  # no navigation, no data before login
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]  # no script may run at all


def test_wrong_password_refused_right_one_gives_a_strict_cookie(dashboard: Running) -> None:
    name, password = dashboard.admin
    client = Client(dashboard.url)
    for who, pw in ((name, "not-" + password), ("nobody", password)):
        status, _, page, cookies = client.login(who, pw)
        assert status == 403 and "Wrong account name or password" in page
        assert not any(c.startswith(COOKIE + "=") for c in cookies)
    assert client.request("GET", "/")[0] == 303

    status, headers, _, cookies = client.login(name, password)
    assert (status, headers["Location"]) == (303, "/")
    session = next(c for c in cookies if c.startswith(COOKIE + "="))
    assert "HttpOnly" in session and "SameSite=Strict" in session
    assert "Secure" not in session  # plain HTTP on localhost: a Secure cookie would not come back
    assert client.request("GET", "/")[0] == 200

    # A cookie edited by hand is not a session.
    value = client.cookies[COOKIE]
    client.cookies[COOKIE] = ("A" if value[0] != "A" else "B") + value[1:]
    assert client.request("GET", "/")[0] == 303


def test_login_form_itself_needs_its_csrf_token(dashboard: Running) -> None:
    client = Client(dashboard.url)
    name, password = dashboard.admin
    status, _, _, cookies = client.request("POST", "/login", {"account": name,
                                                              "password": password})
    assert status == 403 and not cookies


def test_post_without_csrf_token_is_forbidden(dashboard: Running, codec) -> None:
    client = Client(dashboard.url)
    client.login(*dashboard.admin)
    with connect(dashboard.settings) as db:
        mid = webseed.add_mailbox(db, dashboard.settings, "nobody", "pw")
    partition, offset = webseed.dead_letter(dashboard.settings, codec)
    letter = f"{partition}:{offset}"
    for path, form in ((f"/mailboxes/{mid}/test", {}), ("/dead-letters/retry",
                                                          {"letter": letter})):
        assert client.request("POST", path, form)[0] == 403
        assert client.request("POST", path, {**form, "csrf": "0" * 64})[0] == 403
    # A token from another session is worthless here.
    other = Client(dashboard.url)
    other.login(*dashboard.admin)
    assert client.request("POST", f"/mailboxes/{mid}/test", {"csrf": other.csrf()})[0] == 403
    with connect(dashboard.settings) as db:
        assert db.execute("SELECT last_test_at FROM ingest_mailboxes").fetchone() == (None,)

    # With the token the same POST runs the test (no such Dovecot user: a Failure, recorded).
    status, headers, _, _ = client.request("POST", f"/mailboxes/{mid}/test",
                                           {"csrf": client.csrf()})
    assert status == 303
    _, _, page, _ = client.request("GET", headers["Location"])
    assert "Failure" in page
    with connect(dashboard.settings) as db:
        assert db.execute("SELECT last_test_ok FROM ingest_mailboxes").fetchone() == (False,)


def test_script_subject_renders_escaped(dashboard: Running, codec) -> None:
    with connect(dashboard.settings) as db:
        seeded = webseed.activity(db, codec)
    client = Client(dashboard.url)
    client.login(*dashboard.admin)
    for path in ("/emails", f"/emails/{seeded.activity_id}", f"/cases/{seeded.case_id}",
                 "/cases"):
        status, _, page, _ = client.request("GET", path)
        assert status == 200, path
        assert "<script>" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, (path, page)
    _, _, page, _ = client.request("GET", f"/emails/{seeded.activity_id}")
    assert "<b>Example" not in page
    assert "ann@customer.example" in page


def test_flash_messages_cannot_be_forged(dashboard: Running) -> None:
    client = Client(dashboard.url)
    client.login(*dashboard.admin)
    _, _, page, _ = client.request("GET", "/?" + urlencode({"flash": "Call 555 now",
                                                            "sig": "0" * 64}))
    assert "Call 555" not in page


def test_stages_and_dead_letters_pages_read_the_real_topics(dashboard: Running, codec) -> None:
    partition, offset = webseed.dead_letter(dashboard.settings, codec)
    client = Client(dashboard.url)
    client.login(*dashboard.admin)
    status, _, page, _ = client.request("GET", "/stages")
    assert status == 200 and 'http-equiv="refresh"' in page
    for stage in ("unwrap", "route", "persist"):
        assert f"{dashboard.settings.topic_prefix}.{stage}" in page
    status, _, page, _ = client.request("GET", "/dead-letters")
    assert status == 200 and f"{partition}:{offset}" in page and "mime_unparseable" in page
