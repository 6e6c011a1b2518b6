"""The dashboard's own database role (migration 0065): the server connects as a login user in
``mailroom_web`` only (the ``dashboard`` fixture), every page and button works with that role's
grants, and the role can change nothing of the pipeline's — no record deleted or edited, no
offset or checkpoint moved, no audit row removed, no account added."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
import webseed
from conftest import web_login
from psycopg import errors
from test_web_http import Client
from webseed import Running

from mailroom.console.web.pages import ROUTES
from mailroom.db import connect
from mailroom.settings import Settings
from persist.activities import set_refused

pytestmark = pytest.mark.integration

REFUSED = "in_reply_to <a1@customer.example>: thread of account:a-customer, <b>sender</b> " \
          "of account:a-other"


@pytest.fixture
def as_web(web_settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection to this test's schema as the dashboard's role."""
    with web_login(web_settings) as settings, connect(settings) as conn:
        yield conn


def refused(conn: psycopg.Connection, sql: str) -> bool:
    try:
        conn.execute(sql)
    except errors.InsufficientPrivilege:
        return True
    finally:
        conn.rollback()
    return False


def test_the_dashboards_role_changes_nothing_of_the_pipelines(
    as_web: psycopg.Connection, web_settings: Settings, codec
) -> None:
    with connect(web_settings) as owner:
        webseed.activity(owner, codec, subject="kept")
    # It reads what the stages write …
    assert as_web.execute("SELECT subject FROM email_activities").fetchall() == [("kept",)]
    as_web.rollback()
    # … and may touch none of it.
    for sql in (
        "DELETE FROM email_activities",
        "UPDATE email_activities SET subject = 'x'",
        "DELETE FROM cases",
        "DELETE FROM message_traces",
        "UPDATE persist_offsets SET next_offset = 0",
        "INSERT INTO persist_offsets (group_id, topic, partition, next_offset) "
        "VALUES ('g', 't', 0, 0)",
        "UPDATE ingest_checkpoints SET last_uid = 0",
        "UPDATE ingest_mailboxes SET secret = 'x'",  # only a Test's result columns
        "UPDATE ingest_mailboxes SET enabled = false",
        "INSERT INTO web_accounts (name, role, password_hash) VALUES ('eve', 'admin', 'x')",
        "UPDATE web_accounts SET role = 'admin'",  # roles are the command's
        "DELETE FROM web_audit",  # the audit log is append-only for the dashboard
        "UPDATE web_audit SET actor = 'nobody'",
        "TRUNCATE web_sessions",
        "DELETE FROM users",
    ):
        assert refused(as_web, sql), sql
    # Its own writes work.
    as_web.execute("INSERT INTO web_audit (actor, action) VALUES ('t', 'test')")
    as_web.execute("INSERT INTO web_login_failures (kind, key) VALUES ('account', 't')")
    as_web.execute("DELETE FROM web_login_failures")
    as_web.execute("DELETE FROM web_stage_samples")
    as_web.commit()


def _concrete(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: ids[m[1]], path)


def test_every_page_and_button_works_as_the_dashboards_role(
    dashboard: Running, codec, mail_user: tuple[str, str]
) -> None:
    s = dashboard.settings
    with connect(s) as owner:
        mid = webseed.add_mailbox(owner, s, *mail_user)
        seeded = webseed.activity(owner, codec)
        set_refused(owner, seeded.activity_id, REFUSED)  # as the customer guard keeps it
        owner.commit()
    partition, offset = webseed.dead_letter(s, codec)
    admin = Client(dashboard.url)
    assert admin.login(*dashboard.admin)[0] == 303

    # Every page in the route table, as an admin (who may read all of them).
    ids = {"id": str(seeded.activity_id), "name": dashboard.logins["viewer"][0]}
    for route in ROUTES:
        if route.method != "GET" or route.role is None:  # the login page sends us home
            continue
        path = _concrete(route.path, {**ids, "id": str(
            seeded.case_id if route.path.startswith("/cases") else seeded.activity_id)})
        status, _, page, _ = admin.request("GET", path)
        assert status == 200, (path, status, page[:300])

    # The refusal on the email's page, escaped, and in the review list.
    _, _, page, _ = admin.request("GET", f"/emails/{seeded.activity_id}")
    assert "Correlation refused" in page and "&lt;b&gt;sender&lt;/b&gt;" in page
    assert "<b>sender</b>" not in page
    _, _, page, _ = admin.request("GET", "/emails?refused=1")
    assert f'href="/emails/{seeded.activity_id}"' in page and "correlation refused" in page

    # Every button.
    operator = Client(dashboard.url)
    assert operator.login(*dashboard.logins["operator"])[0] == 303
    assert operator.request("POST", f"/mailboxes/{mid}/test", {"csrf": operator.csrf()}
                            )[0] == 303
    status, headers, _, _ = operator.request(
        "POST", "/dead-letters/retry", {"csrf": operator.csrf(),
                                        "letter": f"{partition}:{offset}"})
    assert status == 303 and "Sent 1 message" in operator.request("GET", headers["Location"])[2]
    viewer_name = dashboard.logins["viewer"][0]
    for action in ("disable", "enable"):
        assert admin.request("POST", f"/accounts/{viewer_name}/{action}",
                             {"csrf": admin.csrf()})[0] == 303
    viewer = Client(dashboard.url)
    assert viewer.login(*dashboard.logins["viewer"])[0] == 303
    status, _, _, _ = viewer.request("POST", "/account/password", {
        "csrf": viewer.csrf(), "current": dashboard.logins["viewer"][1],
        "new": "a new password 1", "repeat": "a new password 1"})
    assert status == 303
    assert admin.request("POST", "/logout", {"csrf": admin.csrf()})[0] == 303

    with connect(s) as owner:
        assert owner.execute("SELECT last_test_ok FROM ingest_mailboxes WHERE id = %s",
                             (mid,)).fetchone() == (True,)
        actions = {r[0] for r in owner.execute("SELECT action FROM web_audit").fetchall()}
    assert {"login", "mailbox.test", "dead_letter.retry", "account.disable", "account.enable",
            "account.password", "logout"} <= actions
