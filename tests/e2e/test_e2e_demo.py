"""The acceptance of ``mailroom demo``: it reaches its summary, the figures are the ones
the scenario fixes (written out here, not read back from the database), the rules preview
counts the changes its candidate file makes, the forwarding rules are deployed and the message
redirected through Alice's rule ends as a dead letter with its reason, new mail shows up, and
SIGINT stops every process cleanly. Run as a subprocess in this test's own topic prefix
and database schema, so it leaves the local stack's demo alone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from queue import Empty, Queue

import pytest
from pipeline_testing import drop_schema_and_topics

from mailroom.console.demo import seed
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

FIGURES = {
    "records": {
        "email activities": 15, "receiving mailbox links": 18, "parties": 35, "cases": 2,
        "queue items": 7, "contacts created": 2, "collisions": 1, "delivery failures": 1,
    },
    "skips": {
        "tracks known: the sender is not a known account/contact/lead": 1,
        "tracks replies: not a reply": 1,
    },
    "dead_letters": {"unwrap: not_a_forwarder": 1, "unwrap: auth_failed": 1,
                     "unwrap: not_forwarded": 1},
    "correlation": {"in_reply_to": 4, "token": 1},
}

#: The rules preview of the demo's candidate file: one line per kind of change, in this order.
PREVIEW = [
    "20 emails replayed from unwrapped: 3 planned differently, 17 the same",
    "newly tracked: 1 — 'Fabrikam pricing for Q2' from ravi@fabrikam.example: skipped -> "
    "tracked for user:u-bob",
    "tracking changed: 1 — 'Re: Contract renewal' from mia@contoso.example: tracked if a reply "
    "to tracked mail for user:u-bob -> tracked for user:u-bob",
    "case created: 1 — 'Bulk order: 200 chairs' from ravi@fabrikam.example: none -> "
    "queue:q-sales rule 1 'known customers'",
    "queue item changed: 1 — 'Bulk order: 200 chairs' from ravi@fabrikam.example: "
    "queue:q-sales rule 1 'sales enquiries' -> queue:q-sales rule 1 'known customers'",
]
FORWARDERS = ("alice", "bob", "carol", "sales")


def _upto(lines: Queue[str], end: str, seen: list[str]) -> list[str]:
    """The next lines up to (without) the one matching ``end``, stripped."""
    first = len(seen)
    _until(lines, end, 120, seen)
    return [line.strip() for line in seen[first:-1]]


def _lines(proc: subprocess.Popen[str], out: Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.put(line.rstrip("\n"))


def _until(lines: Queue[str], pattern: str, timeout_s: float, seen: list[str]) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except Empty:
            continue
        seen.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"no line matching {pattern!r} in {timeout_s} s:\n" + "\n".join(seen))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_summary_follow_and_clean_sigint(base_settings: Settings, tmp_path: Path) -> None:
    name = "demo" + uuid.uuid4().hex[:8]
    schema = f"test_{name}"
    settings = base_settings.replace(
        topic_prefix=f"test.{name}",
        database_url=f"{base_settings.dsn} options='-c search_path={schema}'",
    )
    env = {**os.environ, "MAILROOM_TOPIC_PREFIX": settings.topic_prefix,
           "MAILROOM_DATABASE_URL": settings.database_url, "PYTHONUNBUFFERED": "1"}
    figures = tmp_path / "figures.json"
    mailroom = Path(sys.executable).with_name("mailroom")
    proc = subprocess.Popen(
        [str(mailroom), "demo", "--summary-json", str(figures), "--web-port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: Queue[str] = Queue()
    threading.Thread(target=_lines, args=(proc, lines), daemon=True).start()
    seen: list[str] = []
    pids: list[int] = []
    try:
        started = _until(lines, r"^Started ", 90, seen)
        pids = [int(p) for p in re.findall(r"pid (\d+)", started)]
        assert len(pids) == 4  # ingest, unwrap, route, persist: separate processes
        _until(lines, r"^Summary", 180, seen)
        _until(lines, r"time taken", 10, seen)
        web = _until(lines, r"dashboard:", 30, seen)
        pids += [int(p) for p in re.findall(r"pid (\d+)", web)]
        _until(lines, r"every figure is what the scenario expects", 10, seen)
        _until(lines, r"rules preview \(mailroom rules preview \S+candidate-rules\.toml "
               r"--since 1d; nothing loaded\)", 60, seen)
        preview = _upto(lines, r"^  forwarding rules \(mailroom rules deploy ", seen)
        assert preview[1:] == PREVIEW, "\n".join(seen)

        forwarding = _upto(lines, r"^  rules status:", seen)
        assert [line.split()[:3] for line in forwarding[:4]] == [
            ["ok", f"{u}@acme.example", "installed:"] for u in FORWARDERS], forwarding
        assert forwarding[4] == "4 user(s), 0 failed", forwarding
        assert re.fullmatch(r"the redirect reached the pipeline in [\d.]+ s and became a dead "
                            r"letter auth_failed", forwarding[6]), forwarding
        assert forwarding[7].startswith(
            "reason: Authentication-Results of mx.acme.example do not show the redirect "
            "claimed by alice@acme.example (X-Mailroom-Forwarded-By)"), forwarding
        status = _upto(lines, r"^  erasure \(", seen)
        assert [line.split()[:2] for line in status[1:]] == [
            [f"{u}@acme.example", "deployed"] for u in FORWARDERS], status
        assert all(re.search(r"deployed\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", line)
                   for line in status[1:]), status
        erased = seen[-1]
        assert "1 email activities" in erased and "1 contacts" in erased
        _until(lines, r"^Following new records", 10, seen)
        got = json.loads(figures.read_text())
        assert {k: got[k] for k in FIGURES} == FIGURES
        text = "\n".join(seen)
        assert "email activities: 15" in text and "unwrap: not_a_forwarder: 1" in text

        # Still running: new mail appended to the support mailbox becomes a record.
        seed.append_extra(settings, 1)
        _until(lines, r"new email activity #\d+: jane@contoso.example: 'Follow-up #1'", 60, seen)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, "\n".join(seen)
        _until(lines, r"^stopped: ", 10, seen)
        assert not [p for p in pids if _alive(p)], f"children left running: {pids}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        drop_schema_and_topics(base_settings, schema, settings.topic_prefix)
