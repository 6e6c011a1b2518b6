"""The inline executor's hard watchdog (faulthandler's C thread): it ends a process stuck where
no SIGALRM reaches, and never a healthy batch, though it is armed again only every half budget
rather than per message. Each case runs in a process of its own: the watchdog ``_exit``\\ s."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPT = """
import sys
from stage_toy import SPEC, raw
from mailroom.codec import Codec
from mailroom.settings import Settings
from mailroom.stage import Context, Source
from mailroom.stage.budget import InlineExecutor

codec = Codec.from_settings(Settings())
executor = InlineExecutor(SPEC, codec, Settings(stage_budget_ms=300))
contents = sys.argv[1].split(",")
contexts = [Context("toy", Source("t.in", 0, n, b"k", codec.encode_record(raw(n, c.encode())), 0))
            for n, c in enumerate(contents)]
for _ in range(2):  # two batches: the watchdog is disarmed between them
    verdicts = executor.run_batch(contexts)
print("answered", ",".join(v.kind for v in verdicts), flush=True)
"""


def run(contents: list[str]) -> tuple[int, str, str, float]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(contents)], cwd=HERE,
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr, time.monotonic() - began


def test_a_batch_longer_than_twice_the_budget_is_not_cut_short() -> None:
    # 10 messages of 0.12 s with a budget of 0.3 s: 1.2 s a batch, twice the watchdog's 0.6 s.
    code, out, err, _ = run(["NAP"] * 10)
    assert code == 0, err
    assert out.strip() == "answered " + ",".join(["ok"] * 10)


def test_a_message_stuck_past_the_alarm_ends_the_process() -> None:
    code, out, err, took = run(["NAP", "NAP", "NAP", "STUCK", "NAP"])
    assert code != 0 and "answered" not in out
    assert "Timeout" in err  # faulthandler's dump of the stuck stacks
    assert took < 30
