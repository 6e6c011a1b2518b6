"""bench/pure.py runs on a few of the end-to-end bench's messages: every one unwraps to an email
and is planned (a check that it works, not a measurement)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_pure_functions_bench_runs_on_the_e2e_mail() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "pure.py"), "--mails", "40", "--rounds", "1"],
        capture_output=True, text=True, timeout=300, check=True, cwd=REPO,
    ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["bench"] == "pure" and figures["mails"] == figures["emails"] == 40
    assert figures["activities"] == 40  # every email planned as an activity, as in e2e
    assert all(figures[k] > 0 for k in ("unwrap_us", "unwrap_with_codec_us", "route_us",
                                        "route_with_codec_us"))
    assert "unwrap, pure function" in out
