"""PostgreSQL restarted under the four stage processes while mail is on its way: no stage exits,
every stage carries on once the database is back, and the exact checks of the chaos suite
still hold (every mail exactly one activity, no duplicate rows, no dead letters, lag 0,
nothing owed on the mail server).

The restart is a fast shutdown (sessions cut: ``AdminShutdown``) and a start, as ``mailroom
stack down postgres`` then ``up postgres`` do; PostgreSQL is always started again, since other
tests share it.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from chaoslib import checks, mail, seed
from chaoslib.drive import activities, restart_postgres, wait_drained, wait_for
from chaoslib.preconditions import skip_unless_seedable
from chaoslib.stages import Stages

from mailroom.console.ops.groups import Cluster
from mailroom.console.stack import postgres
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

MAILS = 1500  # at ~500 mails/s the first restart must still find mail on its way
RESTARTS = 2
LANDING_TIMEOUT_S = 180.0  # the first activities, then more after each restart
DRAIN_TIMEOUT_S = 240.0
STALL_TIMEOUT_S = 90.0


def test_every_stage_stays_up_through_postgresql_restarts(
    base_settings: Settings, tmp_path: Path,
) -> None:
    skip_unless_seedable(base_settings)
    w = seed.world(base_settings, mail.plan_mails(MAILS, random.SystemRandom().randrange(10**6)))
    stages = Stages(w.settings, tmp_path / "logs")
    try:
        seed.create(w)
        with Cluster(w.settings) as cluster:
            stages.start_all()
            landed = 0
            for n in range(1, RESTARTS + 1):
                # Mid-run: some mail stored, more still on its way through the stages (the
                # last restart may find it all stored: the stages still poll and must survive).
                wait_for(f"activity past {landed} before restart {n}",
                          lambda past=landed: (activities(w) or 0) > min(past, MAILS - 1),
                          stages, LANDING_TIMEOUT_S)
                landed = activities(w) or 0
                if n == 1:
                    assert landed < MAILS, "all mail stored before the first restart: raise MAILS"
                try:
                    restart_postgres(w)
                finally:
                    postgres.up(w.base)  # never leave the shared database stopped
            drained, _, progress = wait_drained(w, stages, cluster, DRAIN_TIMEOUT_S,
                                                stall_s=STALL_TIMEOUT_S)
            assert drained, f"not drained after the restarts: {progress.summary()}"
            failed = [c for c in checks.run_all(w, stages, cluster) if not c.ok]
            assert not failed, "\n".join(f"{c.name}: {c.detail}" for c in failed)
    finally:
        codes = stages.stop()
        seed.remove(w)
    assert codes == {s: 0 for s in codes}, f"SIGTERM at the end must exit 0: {codes}"
