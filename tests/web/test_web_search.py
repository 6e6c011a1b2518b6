""""Why wasn't this email tracked?" on the real stack: the same search finds a stored email (by
Message-ID, sender, subject words, day), a skip with its reason, a dead letter with its reason
and a Retry, or else says it may never have arrived and shows the mailboxes' last polls."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import webseed
from test_web_http import Client
from webseed import Running

from mailroom.db import connect
from mailroom.deadletters import DeadLetterWriter
from mailroom.kafka import make_producer
from mailroom.records.email import Address, Delivery, Email
from mailroom.stage.types import Source

pytestmark = pytest.mark.integration


def _section(page: str, table_id: str) -> str:
    return page.split(f'id="{table_id}"')[1].split("</table>")[0]


def search(client: Client, q: str, day: str = "") -> str:
    status, _, page, _ = client.request("GET", "/search?" + urlencode({"q": q, "date": day}))
    assert status == 200
    return page


def test_search_tells_where_an_email_ended_up(dashboard: Running, codec) -> None:
    settings = dashboard.settings
    with connect(settings) as db:
        webseed.add_mailbox(db, settings, "support", "pw")
        seeded = webseed.activity(db, codec)
        # A skipped email, as route and persist record it in the trace table.
        for n, (stage, event, detail) in enumerate([
                ("route", "skipped", '{"00 track": "skip: sender not known"}'),
                ("persist", "skipped", '{"reason": "not a known sender", "rule": "track"}')]):
            db.execute("INSERT INTO message_traces (topic, topic_partition, topic_offset, key, "
                       "stage, event, at, message_id, dedupe_key, detail) VALUES ('t', 0, %s, "
                       "'skip-1@news.example', %s, %s, now(), '<skip-1@news.example>', "
                       "'skip-1@news.example', %s)", (n, stage, event, detail))
        db.commit()
    # A dead letter whose payload is an email with a Message-ID (route gave up on it).
    email = Email(dedupe_key="dl-7@broken.example", content_hash="h", subject="Invoice 42",
                  direction="incoming", message_id="dl-7@broken.example",
                  from_address=Address("", "billing@broken.example"),
                  delivery=Delivery(mailbox_id="1", mailbox_address="support@example.com",
                                    owner_kind="queue", owner_id=None, folder="INBOX",
                                    copy_kind="direct"))
    producer = make_producer(settings)
    try:
        meta = DeadLetterWriter(producer, codec, settings).send_and_wait(
            "route", "reference_unavailable", "no reference data",
            Source(settings.topic("unwrapped"), 0, 3, b"dl-7@broken.example",
                   codec.encode_record(email), int(time.time() * 1000)), 3)
    finally:
        producer.close()
    letter = f"{meta.partition}:{meta.offset}"

    viewer, operator = Client(dashboard.url), Client(dashboard.url)
    viewer.login(*dashboard.logins["viewer"])
    operator.login(*dashboard.logins["operator"])
    today = datetime.now(UTC).date()

    # Stored: by Message-ID (with or without <>), sender, subject words, and on its day only.
    link = f'href="/emails/{seeded.activity_id}"'
    for q, day in ((seeded.dedupe_key, ""), (f"<{seeded.dedupe_key}>", ""),
                   ("ann@customer.example", ""), ("printer on", str(today))):
        page = search(viewer, q, day)
        assert link in _section(page, "search-emails"), q
        assert 'id="never-arrived"' not in page
    page = search(viewer, "printer on", str(today - timedelta(days=3)))
    assert link not in page and 'id="never-arrived"' in page

    # Skipped: the reason persist recorded, and the path through the stages.
    page = search(viewer, "<skip-1@news.example>")
    verdicts = _section(page, "verdicts")
    assert "not tracked: skipped" in verdicts and "not a known sender" in verdicts
    assert "route skipped → persist skipped" in verdicts.replace("&gt;", ">").replace(
        "&rarr;", "→")

    # Dead-lettered: found by Message-ID or subject, with its reason; Retry for an operator.
    for q in ("dl-7@broken.example", "invoice 42"):
        found = _section(search(viewer, q), "search-letters")
        assert letter in found and "reference_unavailable" in found and ">Retry<" not in found
    page = search(operator, "dl-7@broken.example")
    assert ">Retry<" in _section(page, "search-letters")
    token = page.split('name="csrf" value="')[1].split('"')[0]
    status, headers, _, _ = operator.request("POST", "/dead-letters/retry",
                                             {"csrf": token, "letter": letter})
    assert status == 303 and "Sent+1+message" in headers["Location"]

    # Nowhere: maybe it never arrived — here is when each mailbox was last polled.
    page = search(viewer, "nothing-like-this@nowhere.example")
    assert 'id="never-arrived"' in page
    assert "support@example.com" in _section(page, "last-polls")

    # The query is shown back escaped; a bad day is said so.
    page = search(viewer, '"><script>alert(1)</script>')
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Not a day" in search(viewer, "x", "31.12.2026")
