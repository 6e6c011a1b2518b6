"""The yardstick still works: bench/e2e.py on a small mail set (a check, not a measurement —
tests are never timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_e2e_bench_runs_and_every_message_is_one_activity() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "e2e.py"), "--mails", "60",
         "--latency-seconds", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["mails"] == 60
    [run] = report["pipeline"]
    assert run["rows_ok"] and run["dead_letters"] == 0 and run["ratio"] > 0
