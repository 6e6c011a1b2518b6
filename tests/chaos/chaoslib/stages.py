"""The four stages as separate ``mailroom run STAGE`` processes, each the leader of its own
process group, so a kill takes the whole stage down at once: the runner *and* the worker
subprocess it spawns for the handler (a SIGKILL of the runner alone would leave the worker).

:class:`Stages` starts them, kills one (SIGKILL to its group) and starts it again, and notices
a stage that exited on its own — counted apart from the kills and started again, because a
stage that stays down would only turn a finding into a timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mailroom.console.demo.pipeline import child_environment, mailroom_command
from mailroom.settings import Settings

#: consumers first: nothing waits for a group to form before it has an input
STAGES = ("persist", "route", "unwrap", "ingest")
STOP_TIMEOUT_S = 30.0


@dataclass
class Exit:
    """A stage process that ended without being killed by the run."""

    stage: str
    returncode: int
    at_s: float  # seconds since the stages started
    log_tail: str


@dataclass
class _Proc:
    stage: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    since: float = field(default_factory=time.monotonic)


@dataclass
class Stages:
    settings: Settings
    log_dir: Path
    kills: Counter[str] = field(default_factory=Counter)
    exits: list[Exit] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # groups with a process after a kill
    #: a port per stage for its /metrics, /healthz and /readyz (none: the endpoints are off)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0
    _procs: dict[str, _Proc] = field(default_factory=dict)

    def start_all(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        for stage in STAGES:
            self.start(stage)

    def log_path(self, stage: str) -> Path:
        return self.log_dir / f"{stage}.log"

    def start(self, stage: str) -> None:
        log = self.log_path(stage).open("ab")
        log.write(f"--- chaos: started at +{self.elapsed():.1f} s ---\n".encode())
        log.flush()
        settings = self.settings.replace(
            metrics_port=self.metrics_ports.get(stage, self.settings.metrics_port))
        popen = subprocess.Popen(
            [*mailroom_command(), "run", stage], env=child_environment(settings),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches the worker too
        )
        self._procs[stage] = _Proc(stage, popen, log)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def kill(self, stage: str) -> None:
        """SIGKILL the stage's whole process group, wait for it, start the stage again."""
        proc = self._procs[stage]
        pgid = proc.popen.pid  # a session leader's group id is its pid
        with contextlib.suppress(ProcessLookupError):  # it had exited on its own: see below
            os.killpg(pgid, signal.SIGKILL)
        proc.popen.wait()
        if _group_alive(pgid):
            # The worker had left the group, or outlived the kill: say so, and end it.
            self.leftovers.append(f"{stage} at +{self.elapsed():.1f} s")
            os.killpg(pgid, signal.SIGKILL)
        if proc.popen.returncode != -signal.SIGKILL:
            self._record_exit(proc)
        else:
            self.kills[stage] += 1
        proc.log.write(f"--- chaos: SIGKILL at +{self.elapsed():.1f} s ---\n".encode())
        proc.log.close()
        self.start(stage)

    def halt(self, stage: str) -> None:
        """SIGKILL the stage's whole process group for good (a host lost with its processes):
        not started again, not counted as a kill of the chaos schedule."""
        proc = self._procs.pop(stage)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait()
        if _group_alive(proc.popen.pid):
            self.leftovers.append(f"{stage} at +{self.elapsed():.1f} s")
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.log.write(f"--- chaos: SIGKILL for good at +{self.elapsed():.1f} s ---\n".encode())
        proc.log.close()

    def pid(self, stage: str) -> int | None:
        """The pid of the stage's process (the leader of its group); None once halted."""
        proc = self._procs.get(stage)
        return proc.popen.pid if proc is not None else None

    def reap(self) -> list[Exit]:
        """Stages that exited on their own since the last look: recorded and started again."""
        found = []
        for stage, proc in list(self._procs.items()):
            if proc.popen.poll() is not None:
                found.append(self._record_exit(proc))
                proc.log.close()
                self.start(stage)
        return found

    def _record_exit(self, proc: _Proc) -> Exit:
        proc.log.flush()
        tail = _tail(self.log_path(proc.stage).read_text(errors="replace").splitlines())
        found = Exit(proc.stage, int(proc.popen.returncode or 0), self.elapsed(), tail)
        self.exits.append(found)
        return found

    def settle(self, min_uptime_s: float = 10.0) -> None:
        """Wait until every stage has run ``min_uptime_s``: a SIGTERM in the first instants of
        a process, before it installed its handler, ends it by the signal (rc -15), which says
        nothing about how the stage stops."""
        youngest = max(p.since for p in self._procs.values())
        time.sleep(max(0.0, youngest + min_uptime_s - time.monotonic()))

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every stage (finish the batch, commit, leave the group), SIGKILL what
        overstays; returns each stage's exit code."""
        for proc in self._procs.values():
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        codes: dict[str, int | None] = {}
        for stage, proc in self._procs.items():
            try:
                codes[stage] = proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.popen.pid, signal.SIGKILL)
                codes[stage] = proc.popen.wait()
            if _group_alive(proc.popen.pid):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.log.close()
        self._procs.clear()
        return codes


def _tail(lines: list[str], plain: int = 8, most: int = 80) -> str:
    """The end of a stage's log: from the first traceback among its last ``most`` lines when
    there is one (what raised, and where from, chained exceptions included: the last lines
    alone show only the library's innermost frames), else its last ``plain`` lines."""
    recent = [i for i, line in enumerate(lines)
              if line.startswith("Traceback ") and i >= len(lines) - most]
    first = recent[0] if recent else len(lines) - plain
    return "\n".join(lines[max(first, 0):])


def _group_alive(pgid: int, grace_s: float = 2.0) -> bool:
    """Whether a live (not zombie) process is still in the group after ``grace_s``. Read from
    /proc: a killed worker whose parent died waits as a zombie until init reaps it, and a
    signal-0 probe would count it as alive."""
    deadline = time.monotonic() + grace_s
    while _group_members(pgid):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)
    return False


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members
