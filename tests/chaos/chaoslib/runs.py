"""One run from start to finish: seed, start the stages, (kill them), wait for the drain,
check, stop, clean up. A clean run is the same with no kills: the yardstick for the time."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chaoslib import checks, mail, seed
from chaoslib.drive import ChaosLog, ChaosPlan, Landing, unleash, wait_drained
from chaoslib.stages import STAGES, Exit, Stages
from mailroom.console.ops.groups import Cluster
from mailroom.settings import Settings


@dataclass
class RunResult:
    mails: int
    chaos: bool
    total_s: float = 0.0  # stages started -> drained (or gave up)
    stored_s: float | None = None  # stages started -> every mail an activity
    drain_s: float = 0.0  # last kill or restart -> drained
    drained: bool = False
    last_progress: str = ""
    raw_records: int = 0  # on the raw topic: mails plus ingest's redeliveries
    log: ChaosLog = field(default_factory=ChaosLog)
    kills: Counter[str] = field(default_factory=Counter)
    exits: list[Exit] = field(default_factory=list)
    checks: list[checks.Check] = field(default_factory=list)
    stop_codes: dict[str, int | None] = field(default_factory=dict)
    log_dir: str = ""

    @property
    def failed(self) -> list[checks.Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def kills_in_flight(self) -> int:
        return sum(k.in_flight for k in self.log.kills)

    def summary(self) -> dict[str, object]:
        """The run's figures as plain data (the bench's JSON line)."""
        return {
            "mails": self.mails, "chaos": self.chaos, "drained": self.drained,
            "total_s": round(self.total_s, 1), "drain_s": round(self.drain_s, 1),
            "stored_s": None if self.stored_s is None else round(self.stored_s, 1),
            "kills": {s: self.kills[s] for s in STAGES}, "kills_in_flight": self.kills_in_flight,
            "exits": dict(Counter(e.stage for e in self.exits)),
            "pg_restarts": len(self.log.pg_restarts), "raw_records": self.raw_records,
            "broker_kills": [{"node": b.node, "at_s": round(b.at_s, 1),
                              "down_s": round(b.down_s, 1), "in_sync_s": round(b.in_sync_s, 1)}
                             for b in self.log.broker_kills],
            "checks": {c.name: c.ok for c in self.checks},
        }


def run(base: Settings, *, mails: int, seed_value: int, log_dir: Path,
        plan: ChaosPlan | None = None, drain_timeout_s: float = 600.0,
        stall_timeout_s: float = 120.0, keep: bool = False,
        say: Callable[[str], None] = lambda _: None) -> RunResult:
    """Seed ``mails`` forwards, run the stages (under ``plan``'s kills when given), wait for
    the drain (at most ``drain_timeout_s`` after the chaos, or until nothing moved for
    ``stall_timeout_s``) and check. Removes its schema, topics and mail user unless ``keep``."""
    w = seed.world(base, mail.plan_mails(mails, seed_value))
    result = RunResult(mails, plan is not None, log_dir=str(log_dir))
    say(f"{'chaos' if plan else 'clean'} run {w.name}: seeding {mails} forwards "
        f"(logs in {log_dir})")
    stages = Stages(w.settings, log_dir)
    try:
        seed.create(w)
        with Cluster(w.settings) as cluster:
            landing = Landing(mails)
            stages.start_all()
            if plan is not None:
                result.log = unleash(w, stages, plan, seed_value, say, landing)
            chaos_over = stages.elapsed()
            result.drained, _, progress = wait_drained(
                w, stages, cluster, drain_timeout_s, say, stall_timeout_s, landing)
            result.stored_s = landing.at_s
            result.total_s = stages.elapsed()
            result.drain_s = max(0.0, result.total_s - max(chaos_over, result.log.last_s))
            result.last_progress = progress.summary()
            if not result.drained:
                result.checks.append(checks.Check("drained", False, progress.summary()))
            else:
                result.checks.append(checks.Check(
                    "drained", True, f"drained {result.drain_s:.1f} s after the last kill"))
            result.checks += checks.run_all(w, stages, cluster)
            result.raw_records = checks.topic_records(cluster, w.settings.topic("raw"))
            stages.settle()
    finally:
        result.stop_codes = stages.stop()
        result.kills, result.exits = stages.kills, stages.exits
        if not keep:
            with contextlib.suppress(Exception):
                seed.remove(w)
    return result
