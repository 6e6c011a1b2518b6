"""Acceptance: Debian's Chromium, headless, driven by Playwright through its executable path.

Logs in (an operator), loads every page, clicks *Test* on a mailbox (a real Dovecot user) and
*Retry* on a dead letter and checks what changed (on the page, in PostgreSQL, on the source
topic), sees a ``<script>`` subject rendered as text (and no dialog), a POST without the CSRF
token refused, the charts, the search, and a browser without a session seeing only the login
page; the admin reads the operator's actions on the audit page; a viewer sees no buttons and
changes its password.

``MAILROOM_SCREENSHOT=docs/dashboard.png`` also saves a screenshot of the dashboard.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import webseed
from kafka import TopicPartition
from webseed import Running

from mailroom.db import connect
from mailroom.deadletters import RETRY_OF_HEADER
from mailroom.kafka import consumer_config

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e .[dev])")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _retried_records(settings, source_topic: str) -> list:
    from kafka import KafkaConsumer

    config = consumer_config(settings, "unused", client_id="web-test")
    config["group_id"] = None
    consumer = KafkaConsumer(**config)
    try:
        tps = [TopicPartition(source_topic, p)
               for p in sorted(consumer.partitions_for_topic(source_topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out, deadline = [], time.monotonic() + 20
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                out.extend(r for r in records if dict(r.headers or []).get(RETRY_OF_HEADER))
        return out
    finally:
        consumer.close()


def test_dashboard_in_chromium(dashboard: Running, browser, codec, mail_user) -> None:
    settings = dashboard.settings
    user, password = mail_user
    with connect(settings) as db:
        mailbox_id = webseed.add_mailbox(db, settings, user, password)
        seeded = webseed.activity(db, codec)
    partition, offset = webseed.dead_letter(settings, codec)
    letter = f"{partition}:{offset}"

    # Without a session: whatever is asked for, only the login page.
    anonymous = browser.new_context()
    page = anonymous.new_page()
    for path in ("/", "/stages", "/dead-letters", f"/emails/{seeded.activity_id}", "/cases"):
        page.goto(dashboard.url + path)
        assert page.url == dashboard.url + "/login", path
        assert page.locator("input[type=password]").count() == 1
        assert page.locator("nav").count() == 0 and page.locator("table").count() == 0
    page.fill("#account", dashboard.admin[0])
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    assert "Wrong account name or password" in page.inner_text("main")
    anonymous.close()

    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(dashboard.url + "/")
    page.fill("#account", dashboard.logins["operator"][0])
    page.fill("#password", dashboard.logins["operator"][1])
    page.click("button[type=submit]")
    assert page.url == dashboard.url + "/"

    # Mailboxes: click Test; the flash and the row say Success, PostgreSQL recorded it.
    row = page.locator("#mailboxes tbody tr", has_text=f"{user}@example.com")
    assert "never" in row.inner_text()
    row.get_by_role("button", name="Test").click()
    page.wait_for_url(f"{dashboard.url}/?*")
    assert f"Test of {user}@example.com: Success" in page.inner_text(".flash")
    assert "INBOX: 0 messages" in page.inner_text(".flash")
    assert "Success" in page.locator("#mailboxes tbody tr", has_text=user).inner_text()
    with connect(settings) as db:
        assert db.execute("SELECT last_test_ok FROM ingest_mailboxes WHERE id = %s",
                          (mailbox_id,)).fetchone() == (True,)

    # Stages: lag per group and partition, refreshing itself.
    page.goto(dashboard.url + "/stages")
    for stage in ("ingest", "unwrap", "route", "persist"):
        assert stage in page.inner_text("#stages")
    assert page.locator("#partitions tbody tr").count() >= 2 * 3
    assert page.locator('meta[http-equiv="refresh"]').count() == 1

    # Dead letters: Retry one; the raw topic gets the message back, marked as a retry of it.
    page.goto(dashboard.url + "/dead-letters")
    assert "mime_unparseable" in page.inner_text("#by-reason")
    before = _retried_records(settings, settings.topic("raw"))
    page.locator("#letters tbody tr", has_text=letter).get_by_role(
        "button", name="Retry").click()
    page.wait_for_url(f"{dashboard.url}/dead-letters?*")
    assert f"Sent 1 message(s) back (dead letter {letter})" in page.inner_text(".flash")
    after = _retried_records(settings, settings.topic("raw"))
    assert len(after) == len(before) + 1
    retried = after[-1]
    assert retried.value == b"not a raw record" and retried.key == b"mbx/INBOX/1/7"
    assert dict(retried.headers)[RETRY_OF_HEADER].decode().endswith(f"/{letter}")

    # A POST without the CSRF token, from inside the logged-in session: refused.
    response = page.request.post(dashboard.url + "/dead-letters/retry",
                                 form={"letter": letter}, max_redirects=0)
    assert response.status == 403
    assert len(_retried_records(settings, settings.topic("raw"))) == len(after)

    # Emails and cases: the <script> subject is text, nothing ran.
    page.goto(dashboard.url + "/emails")
    assert webseed.EVIL_SUBJECT in page.inner_text("#emails")
    assert page.locator("main script").count() == 0
    page.get_by_role("link", name=webseed.EVIL_SUBJECT).click()
    assert page.url == f"{dashboard.url}/emails/{seeded.activity_id}"
    assert seeded.dedupe_key in page.inner_text("main")
    assert page.locator("#trace").count() == 1
    page.goto(dashboard.url + "/cases")
    page.locator("#cases tbody tr", has_text=webseed.EVIL_SUBJECT).get_by_role("link").click()
    assert webseed.EVIL_SUBJECT in page.inner_text("main")
    assert dialogs == []

    # The pictures: stage history, arrivals per mailbox, dead letters over time, the timeline.
    page.goto(dashboard.url + "/stages")
    page.get_by_role("link", name="History: throughput and lag over the last hour and day").click()
    assert page.url == dashboard.url + "/stages/history"
    assert page.locator("svg#throughput-hour").count() == 1
    page.goto(dashboard.url + "/")
    page.get_by_role("link", name="Arrivals per mailbox over time").click()
    # No stats app counts here: the page says so rather than call every mailbox silent.
    assert page.locator("#no-arrivals").count() == 1
    page.goto(dashboard.url + "/dead-letters")
    assert page.locator("svg#dead-letters-hour rect.bar").count() >= 1
    assert page.locator("main script").count() == 0 and dialogs == []

    # Why wasn't it tracked? The search finds the stored email by its sender.
    page.get_by_role("link", name="Search").click()
    page.fill("#q", "ann@customer.example")
    page.get_by_role("button", name="Search").click()
    assert webseed.EVIL_SUBJECT in page.inner_text("#search-emails")
    page.fill("#q", "nobody-sent-this@nowhere.example")
    page.get_by_role("button", name="Search").click()
    # count() does not wait: under load the new page can be committed but not yet parsed.
    page.wait_for_url("**/search?q=nobody-sent-this*")
    page.wait_for_load_state("load")
    assert page.locator("#never-arrived").count() == 1

    # The operator's own account page; the audit log is the admin's, not the operator's.
    page.get_by_role("link", name=f"{dashboard.logins['operator'][0]} (operator)").click()
    assert page.url == dashboard.url + "/account"
    assert page.locator("nav a", has_text="Audit").count() == 0
    assert page.goto(dashboard.url + "/audit").status == 403

    admin = browser.new_context()
    admin_page = admin.new_page()
    admin_page.goto(dashboard.url + "/login")
    admin_page.fill("#account", dashboard.admin[0])
    admin_page.fill("#password", dashboard.admin[1])
    admin_page.click("button[type=submit]")
    admin_page.get_by_role("link", name="Audit").click()
    audit = admin_page.inner_text("#audit")
    assert "mailbox.test" in audit and "dead_letter.retry" in audit
    assert dashboard.logins["operator"][0] in audit
    admin_page.get_by_role("link", name="Accounts").click()
    row = admin_page.locator("#accounts tbody tr", has_text=dashboard.logins["viewer"][0])
    row.get_by_role("button", name="Disable").click()
    assert "disabled; its sessions ended" in admin_page.inner_text(".flash")
    admin_page.locator("#accounts tbody tr", has_text=dashboard.logins["viewer"][0]
                       ).get_by_role("button", name="Enable").click()
    assert "enabled" in admin_page.inner_text(".flash")
    admin.close()

    # A viewer sees no buttons that change anything, and changes its own password.
    viewer = browser.new_context()
    viewer_page = viewer.new_page()
    name, password = dashboard.logins["viewer"]
    viewer_page.goto(dashboard.url + "/login")
    viewer_page.fill("#account", name)
    viewer_page.fill("#password", password)
    viewer_page.click("button[type=submit]")
    assert viewer_page.get_by_role("button", name="Test").count() == 0
    viewer_page.goto(dashboard.url + "/dead-letters")
    assert viewer_page.get_by_role("button", name="Retry").count() == 0
    viewer_page.goto(dashboard.url + "/account")
    viewer_page.fill("#current", password)
    viewer_page.fill("#new", "a brand new password")
    viewer_page.fill("#repeat", "a brand new password")
    viewer_page.get_by_role("button", name="Change password").click()
    assert "Password changed" in viewer_page.inner_text("main")
    viewer_page.goto(dashboard.url + "/")
    assert viewer_page.url == dashboard.url + "/login"
    viewer.close()

    shot = os.environ.get("MAILROOM_SCREENSHOT")
    if shot:
        page.goto(dashboard.url + "/")
        page.screenshot(path=str(REPO / shot), full_page=True)

    # Log out: the session is gone.
    page.goto(dashboard.url + "/")
    page.get_by_role("button", name="Log out").click()
    page.goto(dashboard.url + "/stages")
    assert page.url == dashboard.url + "/login"
    context.close()
