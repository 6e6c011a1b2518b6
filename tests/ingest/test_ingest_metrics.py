"""``mailroom run ingest`` with a metrics port: scrape /metrics and watch the counters move —
messages published, failures by kind, mailbox enabled, backlog, poll latency; /readyz too."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from ingest_helpers import add_mailbox, append, message, publish_mailboxes, run_ingest
from pipeline_testing import free_port, http_get

from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def _value(text: str, name: str, **labels: str) -> float | None:
    """The sample ``name`` whose labels include ``labels`` (None: no such sample)."""
    for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return None


def _scrape_until(port: int, proc: subprocess.Popen[bytes], log: Path, what: str,
                  ok: object, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        text = http_get(port, "/metrics")[1]
        if text and ok(text):  # type: ignore[operator]
            return text
        time.sleep(0.3)
    raise AssertionError(f"{what} not seen in /metrics:\n{text}\n{log.read_text()[-3000:]}")


def test_run_ingest_exports_its_metrics(
    db_settings: Settings, db: psycopg.Connection, topics: Settings,
    mail_user: tuple[str, str], tmp_path: Path,
) -> None:
    user, password = mail_user
    append(db_settings, user, password, [message(i) for i in range(3)])
    good = add_mailbox(db, db_settings, user, password)
    bad = add_mailbox(db, db_settings, user + "x", "wrong")  # no such login: refused
    publish_mailboxes(db_settings, db)
    port = free_port()
    log = tmp_path / "ingest.log"
    with log.open("wb") as out:
        proc = run_ingest(db_settings, stderr=out, extra_env={
            "MAILROOM_METRICS_PORT": str(port), "MAILROOM_LOG_LEVEL": "INFO"})
    try:
        text = _scrape_until(port, proc, log, "3 published, the bad mailbox disabled", lambda t: (
            _value(t, "mailroom_records_out_total", stage="ingest") == 3
            and _value(t, "mailroom_mailbox_enabled", mailbox=bad.address) == 0))
        assert _value(text, "mailroom_mailbox_enabled", mailbox=good.address) == 1
        assert _value(text, "mailroom_ingest_failures_total", kind="permanent",
                      cause="AuthRefused") == 1
        assert _value(text, "mailroom_ingest_backlog_messages", mailbox=good.address,
                      folder="INBOX") == 0
        assert _value(text, "mailroom_ingest_backlog_oldest_age_seconds",
                      mailbox=good.address, folder="INBOX") == 0
        assert (_value(text, "mailroom_ingest_poll_seconds_count", protocol="imap") or 0) >= 2
        assert http_get(port, "/readyz")[0] == 200 and http_get(port, "/healthz")[0] == 200

        append(db_settings, user, password, [message(i) for i in range(3, 5)])
        _scrape_until(port, proc, log, "2 more published", lambda t: _value(
            t, "mailroom_records_out_total", stage="ingest") == 5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
