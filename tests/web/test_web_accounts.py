"""Accounts instead of one shared secret: each logs in with its own password; roles decide what
it may do (and which buttons it sees); every change lands in the audit log, which admins read;
``mailroom web user`` manages accounts with passwords never on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import webseed
from test_web_http import Client
from webseed import Running

from mailroom.db import connect
from mailroom.settings import Settings, env_name

pytestmark = pytest.mark.integration

READ = ["/", "/stages", "/dead-letters", "/emails", "/cases", "/account"]


def test_roles_decide_what_an_account_may_do(dashboard: Running, codec) -> None:
    with connect(dashboard.settings) as db:
        mid = webseed.add_mailbox(db, dashboard.settings, "nobody", "pw")
    partition, offset = webseed.dead_letter(dashboard.settings, codec)
    clients = {}
    for role, (name, password) in dashboard.logins.items():
        client = clients[role] = Client(dashboard.url)
        assert client.login(name, password)[0] == 303, role
        for path in READ:
            status, _, page, _ = client.request("GET", path)
            assert status == 200, (role, path)
            assert f"{name} ({role})" in page
    # One account's password is not another's.
    viewer, operator = dashboard.logins["viewer"], dashboard.logins["operator"]
    assert Client(dashboard.url).login(viewer[0], operator[1])[0] == 403

    # A viewer sees no buttons that change anything, and is refused if it posts anyway.
    _, _, page, _ = clients["viewer"].request("GET", "/")
    assert "/test\"" not in page and ">Test<" not in page
    _, _, page, _ = clients["viewer"].request("GET", "/dead-letters")
    assert ">Retry<" not in page and ">Retry all<" not in page
    token = clients["viewer"].csrf()
    for path, form in ((f"/mailboxes/{mid}/test", {}),
                       ("/dead-letters/retry", {"letter": f"{partition}:{offset}"})):
        status, _, text, _ = clients["viewer"].request("POST", path, {**form, "csrf": token})
        assert status == 403 and "operator role" in text
    for role in ("viewer", "operator"):
        status, _, page, _ = clients[role].request("GET", "/audit")
        assert status == 403 and "Audit" not in page
    with connect(dashboard.settings) as db:
        assert db.execute("SELECT last_test_at FROM ingest_mailboxes").fetchone() == (None,)

    # An operator may: the test runs and the retry goes out; both are in the audit log.
    op = clients["operator"]
    _, _, page, _ = op.request("GET", "/")
    assert ">Test<" in page and "Audit</a>" not in page
    assert op.request("POST", f"/mailboxes/{mid}/test", {"csrf": op.csrf()})[0] == 303
    letter = f"{partition}:{offset}"
    status, headers, _, _ = op.request("POST", "/dead-letters/retry",
                                       {"csrf": op.csrf(), "letter": letter})
    assert status == 303
    assert "Sent 1 message" in op.request("GET", headers["Location"])[2]

    _, _, page, _ = clients["admin"].request("GET", "/")
    assert "Audit</a>" in page
    status, _, page, _ = clients["admin"].request("GET", "/audit")
    assert status == 200
    audit = page.split('id="audit"')[1]
    for action, target in (("mailbox.test", "nobody@example.com"),
                           ("dead_letter.retry", letter)):
        row = next(r for r in audit.split("<tr>") if f"<td>{action}</td>" in r)
        assert f"<td>{operator[0]}</td>" in row and f"<td>{target}</td>" in row, row
        assert "<td>127.0.0.1</td>" in row
    assert f"<td>{viewer[0]}</td><td>login</td>" in audit


def _cli(settings: Settings, *args: str, stdin: str = "", extra: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, env_name("database_url"): settings.database_url, **(extra or {})}
    return subprocess.run([str(Path(sys.executable).parent / "mailroom"), "web", "user", *args],
                          input=stdin, env=env, capture_output=True, text=True, timeout=120)


def test_web_user_commands(dashboard: Running) -> None:
    settings = dashboard.settings
    added = _cli(settings, "add", "ops.ann", "--role", "operator",
                 stdin="correct horse battery\n")
    assert added.returncode == 0, added.stderr
    assert "account ops.ann (operator) added" in added.stdout
    # No way to give a password as an argument: ps would show it.
    refused = _cli(settings, "add", "eve", "--password", "x" * 12)
    assert refused.returncode != 0 and "unrecognized arguments" in refused.stderr
    assert _cli(settings, "add", "short.pw", stdin="short\n").returncode != 0
    by_env = _cli(settings, "add", "viewer.bo", "--password-env", "BO_PW",
                  extra={"BO_PW": "another long password"})
    assert by_env.returncode == 0, by_env.stderr
    assert _cli(settings, "add", "ops.ann", stdin="correct horse battery\n").returncode != 0

    ann = Client(dashboard.url)
    assert ann.login("ops.ann", "correct horse battery")[0] == 303
    assert ann.request("GET", "/")[0] == 200
    listed = _cli(settings, "list").stdout
    assert "ops.ann\toperator\tenabled\tsessions=1" in listed
    assert "viewer.bo\tviewer\tenabled\tsessions=0" in listed

    # Disable: the live session ends at once and no login works.
    assert _cli(settings, "disable", "ops.ann").returncode == 0
    assert ann.request("GET", "/")[0] == 303
    assert Client(dashboard.url).login("ops.ann", "correct horse battery")[0] == 403
    assert _cli(settings, "enable", "ops.ann").returncode == 0
    assert ann.login("ops.ann", "correct horse battery")[0] == 303
    # A new password from the command line ends the sessions too.
    assert _cli(settings, "password", "ops.ann", stdin="yet another password\n").returncode == 0
    assert ann.request("GET", "/")[0] == 303
    assert ann.login("ops.ann", "yet another password")[0] == 303

    with connect(settings) as db:
        rows = db.execute("SELECT action, target FROM web_audit WHERE actor LIKE 'cli:%%' "
                          "ORDER BY id").fetchall()
        hashes = db.execute("SELECT password_hash FROM web_accounts").fetchall()
    assert rows == [("account.add", "ops.ann"), ("account.add", "viewer.bo"),
                    ("account.disable", "ops.ann"), ("account.enable", "ops.ann"),
                    ("account.password", "ops.ann")]
    assert all(h.startswith("$argon2id$") for (h,) in hashes)


def test_admins_disable_and_enable_accounts_on_the_accounts_page(dashboard: Running) -> None:
    admin, viewer = Client(dashboard.url), Client(dashboard.url)
    admin.login(*dashboard.admin)
    viewer.login(*dashboard.logins["viewer"])
    name = dashboard.logins["viewer"][0]
    status, _, page, _ = admin.request("GET", "/accounts")
    assert status == 200
    rows = {r.split("</td>")[0].split("<td>")[-1]: r
            for r in page.split('id="accounts"')[1].split("<tr>")[2:]}
    assert f'action="/accounts/{name}/disable"' in rows[name]
    assert "<td>1</td>" in rows[name]  # the viewer's live session
    assert "/disable" not in rows[dashboard.admin[0]]  # no button to lock oneself out
    assert viewer.request("GET", "/accounts")[0] == 403
    assert viewer.request("POST", f"/accounts/{name}/disable", {"csrf": viewer.csrf()})[0] == 403

    token = admin.csrf()
    status, headers, _, _ = admin.request("POST", f"/accounts/{name}/disable", {"csrf": token})
    assert status == 303
    assert "disabled; its sessions ended" in admin.request("GET", headers["Location"])[2]
    assert viewer.request("GET", "/")[0] == 303
    assert Client(dashboard.url).login(*dashboard.logins["viewer"])[0] == 403
    status, headers, _, _ = admin.request("POST", f"/accounts/{dashboard.admin[0]}/disable",
                                          {"csrf": token})
    assert "cannot+disable+yourself" in headers["Location"]
    admin.request("POST", f"/accounts/{name}/enable", {"csrf": token})
    assert Client(dashboard.url).login(*dashboard.logins["viewer"])[0] == 303
    audit = admin.request("GET", "/audit")[2]
    for action in ("account.disable", "account.enable"):
        assert f"<td>{dashboard.admin[0]}</td><td>{action}</td><td>{name}</td>" in audit
