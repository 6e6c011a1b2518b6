"""A stage process's collector: start-up objects frozen, the young generation swept rarely."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import argparse, gc
from mailroom.commands import run
from mailroom.gctune import GEN0_THRESHOLD
from mailroom.settings import Settings

def probe(settings, args):  # stands for a stage's main
    assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
    return 7

run.STAGES["probe"] = "__main__:probe"
assert gc.get_threshold()[0] == 700
raise SystemExit(run.run(Settings(), argparse.Namespace(stage="probe")))
"""


def test_mailroom_run_tunes_the_collector_before_the_stage_starts() -> None:
    # In a child: freezing the test runner's own objects would change every later test.
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 7, done.stderr
