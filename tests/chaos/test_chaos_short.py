"""The chaos suite, short: a few hundred forwards through the four stage processes while a random
stage's process group is SIGKILLed every few seconds, then the exact checks of ``bench/chaos.py``
(docs/chaos.md): every mail exactly one activity, no duplicate rows, no dead letters, lag 0,
nothing owed on the mail server, no stage exited on its own.

The seed is random per run and named in the failure, with the bench command that repeats it.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from chaoslib.drive import ChaosPlan
from chaoslib.preconditions import skip_unless_seedable
from chaoslib.runs import run
from chaoslib.stages import STAGES

from mailroom.settings import Settings

pytestmark = pytest.mark.integration

MAILS = 250
# Every stage at least once, none more than twice (kills come in shuffled rounds of the four).
# Four kills of one stage can already dead-letter a healthy record as crash_loop: the attempt
# counter blames the record in flight for a kill from outside (docs/chaos.md, still open).
KILLS = 7
DRAIN_TIMEOUT_S = 90.0
STALL_TIMEOUT_S = 45.0  # a restarted stage is back at work within ~15 s even on a busy machine


def test_nothing_lost_doubled_or_stuck_when_stage_processes_are_killed(
    base_settings: Settings, tmp_path: Path,
) -> None:
    skip_unless_seedable(base_settings)
    seed = random.SystemRandom().randrange(1, 10**6)
    result = run(base_settings, mails=MAILS, seed_value=seed, log_dir=tmp_path / "logs",
                 plan=ChaosPlan(kills=KILLS), drain_timeout_s=DRAIN_TIMEOUT_S,
                 stall_timeout_s=STALL_TIMEOUT_S)
    repeat = (f"seed {seed}; repeat with: python bench/chaos.py --mails {MAILS} "
              f"--kills {KILLS} --seed {seed} (stage logs: {result.log_dir})")
    assert not result.failed, "\n".join(
        [f"{c.name}: {c.detail}" for c in result.failed] + [repeat])
    assert sum(result.kills.values()) == KILLS, (dict(result.kills), repeat)
    assert all(result.kills[s] >= 1 for s in STAGES), (dict(result.kills), repeat)
    assert result.stop_codes == {s: 0 for s in STAGES}, (
        f"SIGTERM at the end: every stage finishes, commits, leaves and exits 0: "
        f"{result.stop_codes}; {repeat}")
