"""The stages page's Volume section, seeded by the real stats app (``mailroom run stats`` on
this test's topics): per mailbox and top senders in the current windows, addresses escaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_web_http import Client
from webseed import Running

from mailroom.codec import Codec
from mailroom.kafka import make_producer
from mailroom.metrics import ARRIVED_HEADER
from mailroom.records.email import Address, Delivery, Email
from mailroom.settings import env_name
from mailroom.stats.read import read_volumes

pytestmark = pytest.mark.integration

T0 = 1_717_408_800_000  # 2024-06-03 10:00 UTC
EVIL = '"><script>alert(1)</script>@evil.example'


def email(n: int, mailbox: str, sender: str) -> Email:
    return Email(
        dedupe_key=f"v{n}@example.org", content_hash=f"h{n}", subject=f"s{n}",
        direction="incoming", from_address=Address("", sender),
        delivery=Delivery(mailbox_id=mailbox.split("@")[0], mailbox_address=mailbox,
                          owner_kind="queue", owner_id=None, folder="INBOX",
                          copy_kind="direct"),
    )


def test_stages_page_shows_volume_per_mailbox_and_sender(dashboard: Running, codec: Codec,
                                                          tmp_path: Path) -> None:
    settings = dashboard.settings
    producer = make_producer(settings)
    for n, mailbox, sender in ((1, "sales@example.com", "a@ext.org"),
                               (2, "sales@example.com", EVIL),
                               (3, "support@example.com", EVIL)):
        producer.send(settings.topic("unwrapped"), key=f"v{n}".encode(),
                      value=codec.encode_record(email(n, mailbox, sender)),
                      headers=[(ARRIVED_HEADER, str(T0 + n).encode())])
    producer.flush()
    producer.close()
    env = {**os.environ, **{env_name(k): str(v) for k, v in {
        "topic_prefix": settings.topic_prefix, "topic_partitions": settings.topic_partitions,
        "metrics_port": 0, "state_dir": tmp_path}.items()}}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mailroom"), "run", "stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(read_volumes(settings)) < 4:
            assert time.monotonic() < deadline and proc.poll() is None, "stats never counted"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0

    client = Client(dashboard.url)
    client.login(*dashboard.admin)
    status, _, page, _ = client.request("GET", "/stages")
    assert status == 200 and "<h2>Volume</h2>" in page, page
    assert "<script>" not in page
    mailboxes = page.split('id="volume-mailboxes"')[1].split("</table>")[0]
    assert "<td>sales@example.com</td><td>2</td><td>2</td>" in mailboxes, mailboxes
    assert "<td>support@example.com</td><td>1</td><td>1</td>" in mailboxes, mailboxes
    senders = page.split('id="volume-senders"')[1].split("</table>")[0]
    escaped = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@evil.example"
    # The biggest sender first; the address as text, never markup.
    assert senders.index(escaped) < senders.index("a@ext.org"), senders
    assert f"<td>{escaped}</td><td>2</td><td>2</td>" in senders, senders
    assert "1h from 2024-06-03 10:00:00 UTC" in page
