"""Driving a run: how far the pipeline is, the kill schedule, PostgreSQL restarts, and the
bounded wait for the drain.

"Drained" is what an operator would call done, read from the same places they read it: the
email activities in PostgreSQL, ``mailroom lag``'s count of records not yet consumed per stage
group (:mod:`mailroom.console.ops.lag`), and ingest's owed server actions and mailbox backlog.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chaoslib import broker_kills
from chaoslib.seed import World
from chaoslib.stages import STAGES, Stages
from mailroom.console.ops.groups import Cluster
from mailroom.console.ops.lag import sample
from mailroom.console.stack import postgres, process
from mailroom.db import connect

TICK_S = 0.5


@dataclass
class Progress:
    activities: int | None = None
    owed_actions: int | None = None
    backlog: int | None = None  # messages on the server above ingest's checkpoint
    behind: dict[str, int] = field(default_factory=dict)  # per stage group, when read
    members: dict[str, int] = field(default_factory=dict)  # processes in each stage group
    error: str = ""
    gave_up: str = ""  # why the wait for the drain ended without it

    def drained(self, expected: int) -> bool:
        return self.activities == expected and self.idle()

    def idle(self) -> bool:
        """Nothing left anywhere for a stage to do (whether or not every mail landed)."""
        return (self.owed_actions == 0 and self.backlog == 0
                and set(self.behind) == {"unwrap", "route", "persist"}
                and not any(self.behind.values()))

    def summary(self) -> str:
        if self.error:
            return f"unreadable ({self.error})"
        lag = ", ".join(f"{s} {n} (members {self.members.get(s, '?')})"
                        for s, n in self.behind.items()) or "not read"
        why = f"{self.gave_up}: " if self.gave_up else ""
        return (f"{why}{self.activities} activities, ingest owes {self.owed_actions} server "
                f"actions with {self.backlog} messages not fetched, behind: {lag}")


def activities(w: World) -> int | None:
    """Email activities stored so far; None while PostgreSQL is unreachable."""
    try:
        with connect(w.settings) as conn:
            return int(conn.execute("SELECT count(*) FROM email_activities").fetchone()[0])
    except Exception:  # noqa: BLE001 - a restarting database is part of the run
        return None


@dataclass
class Landing:
    """When every mail had become an activity (first seen; looked up at most once a second
    unless a count is at hand): the time a run took to store the mail, kills or not."""

    expected: int
    at_s: float | None = None
    _next_look: float = 0.0

    def look(self, w: World, stages: Stages, count: int | None = None) -> None:
        if self.at_s is not None:
            return
        if count is None:
            if time.monotonic() < self._next_look:
                return
            self._next_look = time.monotonic() + 1.0
            count = activities(w)
        if count is not None and count >= self.expected:
            self.at_s = stages.elapsed()


def measure(w: World, cluster: Cluster, *, lag: bool = False) -> Progress:
    """Where the run is; consumer lag is read once every mail landed, or when ``lag`` (it
    costs more: it reads what each group has not consumed)."""
    p = Progress()
    try:
        with connect(w.settings) as conn:
            p.activities = int(conn.execute(
                "SELECT count(*) FROM email_activities").fetchone()[0])
            p.owed_actions = int(conn.execute(
                "SELECT count(*) FROM ingest_pending_actions").fetchone()[0])
            # No checkpoint yet means nothing was fetched: the whole folder is behind.
            row = conn.execute("SELECT sum(coalesce(backlog, 1)), count(*) "
                               "FROM ingest_checkpoints").fetchone()
            p.backlog = int(row[0] or 0) if row[1] else len(w.mails)
        if lag or p.activities >= len(w.mails):
            groups = sample(cluster, w.settings)
            p.behind = {g.stage: g.messages_behind for g in groups}
            p.members = {g.stage: g.members for g in groups}
    except Exception as exc:  # noqa: BLE001 - a restarting database or broker
        p.error = f"{type(exc).__name__}: {exc}"
    return p


def wait_drained(w: World, stages: Stages, cluster: Cluster, timeout_s: float,
                 say: Callable[[str], None] = lambda _: None, stall_s: float = 120.0,
                 landing: Landing | None = None) -> tuple[bool, float, Progress]:
    """Wait until every mail is an activity and nothing is behind or owed anywhere, starting
    again any stage that exits meanwhile; (drained, seconds waited, the last progress). Gives
    up after ``timeout_s``, or earlier when nothing moved for ``stall_s`` or when two lag reads
    10 s apart find nothing left to do while mails are missing (nothing will bring them)."""
    start = last_said = last_moved = time.monotonic()
    seen: object = None
    idle_reads = 0  # lag reads in a row with nothing behind, owed or unfetched anywhere
    while True:
        for exit_ in stages.reap():
            say(f"  {exit_.stage} exited on its own (rc {exit_.returncode}); started again")
        now = time.monotonic()
        stalled = now - last_moved > stall_s
        # Every 10 s, and at the end, with the lag of each group: a stalled group tells why.
        telling = now - last_said > 10 or now - start > timeout_s or stalled
        progress = measure(w, cluster, lag=telling)
        if landing is not None:
            landing.look(w, stages, progress.activities)
        if progress.drained(len(w.mails)):
            return True, now - start, progress
        if progress.behind:
            idle_reads = idle_reads + 1 if progress.idle() else 0
        if now - start > timeout_s or stalled or idle_reads >= 2:
            progress.gave_up = (
                "the pipeline is idle short of the mails" if idle_reads >= 2 else
                f"nothing moved for {stall_s:.0f} s" if stalled else
                f"not done after {timeout_s:.0f} s")
            return False, now - start, progress
        state = (progress.activities, progress.owed_actions, progress.backlog,
                 tuple(sorted(progress.behind.items())) if progress.activities == len(w.mails)
                 else None)
        if state != seen:
            seen, last_moved = state, now
        if telling:
            say(f"  +{stages.elapsed():.0f} s: {progress.summary()}")
            last_said = time.monotonic()
        time.sleep(TICK_S)


# --- chaos -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChaosPlan:
    kills: int = 25
    min_interval_s: float = 2.0
    max_interval_s: float = 4.0
    pg_restarts: int = 0
    victims: tuple[str, ...] = STAGES  # the stages killed
    #: brokers of the three-broker cluster SIGKILLed (the run's Kafka must be the cluster), each
    #: started again after the next stage kill
    broker_kills: int = 0


@dataclass
class Kill:
    stage: str
    at_s: float
    in_flight: bool  # mail was still on its way to PostgreSQL


@dataclass
class ChaosLog:
    kills: list[Kill] = field(default_factory=list)
    pg_restarts: list[tuple[float, float]] = field(default_factory=list)  # (at_s, took_s)
    broker_kills: list[broker_kills.BrokerKill] = field(default_factory=list)

    @property
    def last_s(self) -> float:
        return max([k.at_s for k in self.kills] + [a + t for a, t in self.pg_restarts]
                   + [b.at_s + b.down_s for b in self.broker_kills], default=0.0)


def victims(rng: random.Random, stages: tuple[str, ...] = STAGES) -> Callable[[], str]:
    """The next stage to kill: random, in shuffled rounds of all of ``stages``, so even a short
    run hits every one."""
    pool: list[str] = []

    def pick() -> str:
        if not pool:
            pool.extend(rng.sample(stages, len(stages)))
        return pool.pop()

    return pick


def unleash(w: World, stages: Stages, plan: ChaosPlan, seed: int,
            say: Callable[[str], None] = lambda _: None,
            landing: Landing | None = None) -> ChaosLog:
    """Every min..max interval seconds SIGKILL a random stage's process group and start it
    again, ``plan.kills`` times; PostgreSQL restarts spread evenly among the kills."""
    rng = random.Random(seed)
    pick = victims(rng, plan.victims)
    log = ChaosLog()
    restart_after = {round((j + 1) * plan.kills / (plan.pg_restarts + 1))
                     for j in range(plan.pg_restarts)}
    # Broker kills between the PostgreSQL restarts' places, at most one broker down at a time.
    broker_after = {max(1, round((j + 0.5) * plan.kills / plan.broker_kills))
                    for j in range(plan.broker_kills)}
    broker_down: broker_kills.BrokerKill | None = None
    for n in range(1, plan.kills + 1):
        _sleep_reaping(stages, rng.uniform(plan.min_interval_s, plan.max_interval_s), say,
                       lambda: landing.look(w, stages) if landing else None)
        stage = pick()
        landed = activities(w)
        stages.kill(stage)
        log.kills.append(Kill(stage, stages.elapsed(), landed is None or landed < len(w.mails)))
        say(f"  +{stages.elapsed():5.1f} s kill {n:2}/{plan.kills}: {stage:7} "
            f"({landed if landed is not None else '?'} of {len(w.mails)} stored)")
        if n in restart_after:
            at = stages.elapsed()
            took = restart_postgres(w)
            log.pg_restarts.append((at, took))
            say(f"  +{at:5.1f} s PostgreSQL restarted ({took:.1f} s)")
        if broker_down is not None:  # down since the last kill, a stage killed meanwhile
            _broker_back(w, stages, broker_down, say)
            broker_down = None
        if n in broker_after:
            broker_down = broker_kills.kill_one(w.base, rng, stages.elapsed())
            log.broker_kills.append(broker_down)
            say(f"  +{broker_down.at_s:5.1f} s broker {broker_down.node} SIGKILLed")
    if broker_down is not None:
        _broker_back(w, stages, broker_down, say)
    return log


def _broker_back(w: World, stages: Stages, kill: broker_kills.BrokerKill,
                 say: Callable[[str], None]) -> None:
    broker_kills.restart(w.base, kill, stages.elapsed)
    say(f"  +{stages.elapsed():5.1f} s broker {kill.node} serving again "
        f"{kill.down_s:.1f} s after its kill, in sync {kill.in_sync_s:.1f} s later")


def _sleep_reaping(stages: Stages, seconds: float, say: Callable[[str], None],
                   look: Callable[[], None]) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        look()
        for exit_ in stages.reap():
            say(f"  +{exit_.at_s:5.1f} s {exit_.stage} exited on its own "
                f"(rc {exit_.returncode}); started again")
        time.sleep(min(0.2, left))


def wait_for(what: str, ready: Callable[[], bool], stages: Stages, timeout_s: float) -> None:
    """Until ``ready()``; fails at once when a stage process exits, or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert not stages.reap(), f"a stage exited while waiting for {what}: {stages.exits}"
        assert time.monotonic() < deadline, f"no {what} after {timeout_s:.0f} s"
        time.sleep(0.2)


def restart_postgres(w: World) -> float:
    """The local stack's PostgreSQL stopped (fast shutdown: sessions are cut) and started
    again, as ``mailroom stack down postgres`` then ``up postgres`` would; seconds it took."""
    start = time.monotonic()
    with process.locked(w.base.state_path / "stack.lock"):
        postgres.down(w.base)
        postgres.up(w.base)
    return time.monotonic() - start
