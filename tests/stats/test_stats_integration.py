"""``mailroom run stats`` on the real broker: exact windowed counts, a clean restart keeps them
(table restored from its changelog, offsets committed) and counts mail arriving while it
restores exactly once, an unknown schema stops the process.

Emails are produced to this test's own ``unwrapped`` topic with the ``mailroom-arrived`` header
(ingest's fetch time), which places them in windows: fixed instants, so the counts are exact.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mailroom.codec import MARKER, Codec
from mailroom.kafka import make_admin, make_producer
from mailroom.metrics import ARRIVED_HEADER
from mailroom.records.email import Address, Delivery, Email
from mailroom.settings import Settings, env_name
from mailroom.stats.read import read_volumes
from mailroom.topics import ensure_topics, topic_specs

pytestmark = pytest.mark.integration

H = 3_600_000
T0 = 1_717_408_800_000  # 2024-06-03 10:00 UTC
DAY = 1_717_372_800_000  # 2024-06-03 00:00 UTC
MAILROOM = Path(sys.executable).parent / "mailroom"


def email(n: int, mailbox: str, sender: str) -> Email:
    return Email(
        dedupe_key=f"m{n}@example.org", content_hash=f"h{n}", subject=f"s{n}",
        direction="incoming", from_address=Address("", sender),
        delivery=Delivery(mailbox_id=mailbox.split("@")[0], mailbox_address=mailbox,
                          owner_kind="queue", owner_id=None, folder="INBOX",
                          copy_kind="direct"),
    )


def produce(settings: Settings, items: list[tuple[bytes, bytes, int]]) -> None:
    producer = make_producer(settings)
    try:
        for key, value, arrived in items:
            producer.send(settings.topic("unwrapped"), key=key, value=value,
                          headers=[(ARRIVED_HEADER, str(arrived).encode())])
        producer.flush()
    finally:
        producer.close()


def emails(settings: Settings, codec: Codec, spec: list[tuple[int, str, str, int]]
           ) -> list[tuple[bytes, bytes, int]]:
    return [(f"m{n}".encode(), codec.encode_record(email(n, mb, sender)), at)
            for n, mb, sender, at in spec]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(settings: Settings, tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, **{env_name(k): str(v) for k, v in {
        "topic_prefix": settings.topic_prefix, "topic_partitions": settings.topic_partitions,
        "metrics_port": port, "stats_refresh_s": 1, "state_dir": tmp_path,
    }.items()}}
    return subprocess.Popen([str(MAILROOM), "run", "stats"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(settings: Settings, expected: dict, proc: subprocess.Popen[bytes],
             timeout_s: float = 40) -> dict:
    deadline = time.monotonic() + timeout_s
    got: dict = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        got = read_volumes(settings)
        if got == expected:
            return got
        time.sleep(0.5)
    raise AssertionError(f"volumes never became {expected}: last {got}")


def metrics(port: int, timeout_s: float = 10, want: str = "") -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        except OSError:
            text = ""
        if want in text:
            return text
        time.sleep(0.5)
    raise AssertionError(f"{want!r} not in /metrics:\n{text}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def vol(hours: dict[int, int]) -> dict:
    return {"1h": {str(T0 + h * H): n for h, n in hours.items()},
            "1d": {str(DAY): sum(hours.values())}}


def test_stats_counts_exactly_across_a_clean_restart_and_stop_on_unknown_schema(
        isolated_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings.replace(topic_partitions=2)
    admin = make_admin(settings)
    try:
        ensure_topics(admin, topic_specs(settings))
    finally:
        admin.close()
    codec = Codec.from_settings(settings)
    sales, support = "Sales@Example.com", "support@example.com"
    produce(settings, [
        *emails(settings, codec, [
            (1, sales, "a@ext.org", T0), (2, sales, "a@ext.org", T0 + 10),
            (3, sales, "b@ext.org", T0 + H - 1),  # last ms of the first hour
            (4, support, "a@ext.org", T0 + H), (5, support, "A@Ext.org", T0 + H + 5),
        ]),
        (b"junk", b"not avro at all", T0 + H + 6),  # undecodable: counted, not skipped
    ])
    expected = {
        "mailbox|sales@example.com": vol({0: 3}),
        "mailbox|support@example.com": vol({1: 2}),
        "sender|a@ext.org": vol({0: 2, 1: 2}),
        "sender|b@ext.org": vol({0: 1}),
        "undecodable|": vol({1: 1}),
    }
    port = free_port()
    proc = start(settings, tmp_path, port)
    try:
        wait_for(settings, expected, proc)
        text = metrics(port, want='key="support@example.com",window="1h"} 2.0')
        # The current window is the newest arrival's hour: sales had nothing in it.
        assert 'key="sales@example.com",window="1h"' not in text
        assert 'mailroom_mail_volume{dimension="mailbox",key="sales@example.com",window="1d"}' \
            ' 3.0' in text
        assert 'mailroom_dead_letters_total{stage="stats"} 1.0' in text
    finally:
        assert stop(proc) == 0

    # A clean restart with new mail arriving while the table is restored. faust's recovery
    # resumes the streams before seeking them back to the committed offsets, so the agents can
    # see these records twice (each must still count once), and its end used to clear the
    # agents' queues, dropping records (docs/stats.md, Delivery): each must count exactly once.
    proc = start(settings, tmp_path, port)
    try:
        produce(settings, emails(settings, codec, [
            (6, sales, "a@ext.org", T0 + H + 10), (7, support, "c@ext.org", T0 + H + 11),
        ]))
        expected = {
            **expected,
            "mailbox|sales@example.com": vol({0: 3, 1: 1}),
            "mailbox|support@example.com": vol({1: 3}),
            "sender|a@ext.org": vol({0: 2, 1: 3}),
            "sender|c@ext.org": vol({1: 1}),
        }
        wait_for(settings, expected, proc)
        time.sleep(2)
        assert read_volumes(settings) == expected  # no late second count
    finally:
        assert stop(proc) == 0

    # One more clean restart: the counts stay exact (restored, nothing counted again).
    proc = start(settings, tmp_path, port)
    try:
        wait_for(settings, expected, proc)
        metrics(port, want='key="support@example.com",window="1h"} 3.0')
        time.sleep(2)
        assert read_volumes(settings) == expected  # still exact: no late second count
        # A record of a newer writer: the process stops, saying which fingerprint.
        produce(settings, [(b"new", MARKER + b"\x01" * 8 + b"\x00", T0 + H + 40)])
        assert proc.wait(timeout=30) == 2
        out = proc.stdout.read().decode() if proc.stdout else ""
        assert "0101010101010101" in out and "does not know" in out, out
    finally:
        if proc.poll() is None:
            stop(proc)
    assert read_volumes(settings) == expected
