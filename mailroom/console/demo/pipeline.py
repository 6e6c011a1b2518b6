"""The demo's child processes: every stage as its own ``mailroom run STAGE`` process.

Children inherit the demo's settings through the environment (every setting that differs from
its default becomes ``MAILROOM_<FIELD>``), run in a session of their own so a Ctrl-C in the
terminal reaches only the demo — which then stops them in order, each with SIGTERM (a stage
finishes its batch, commits and leaves its group), and SIGKILL only for one that overstays.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mailroom.commands.run import has_processes
from mailroom.settings import Settings, env_name

log = logging.getLogger(__name__)

STAGES = ("persist", "route", "unwrap", "ingest")  # consumers first: nothing waits on a join
STOP_TIMEOUT_S = 30.0


def mailroom_command() -> list[str]:
    """The ``mailroom`` executable of this installation (the venv's), else ``-m``."""
    beside = Path(sys.executable).with_name("mailroom")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("mailroom")
    return [found] if found else [sys.executable, "-m", "mailroom.cli"]


def child_environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        # Also overwrite an inherited variable: the demo's settings win over the environment.
        if value != getattr(defaults, f.name) or env_name(f.name) in env:
            env[env_name(f.name)] = str(value).lower() if isinstance(value, bool) else str(value)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


class Children:
    """The demo's child processes; :meth:`stop` ends every one of them."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(self, name: str, argv: list[str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / f"{name}.log"
        out = path.open("ab")
        env = child_environment(self.settings)
        if self.settings.metrics_port:
            # Each process needs a port of its own: the configured one, then the next ones.
            port = self.settings.metrics_port + len(self.children)
            env[env_name("metrics_port")] = str(port)
        proc = subprocess.Popen(
            [*mailroom_command(), *argv], env=env,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C goes to the demo only; it stops us in order
        )
        child = Child(name, proc, path, out)
        self.children.append(child)
        return child

    def start_stages(self) -> None:
        for stage in STAGES:
            if has_processes(stage, self.settings):
                self.start(stage, ["run", stage])

    def dead(self) -> list[Child]:
        return [c for c in self.children if c.process.poll() is not None]

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> dict[str, int | None]:
        """SIGTERM every child, wait, SIGKILL what is left; returns each exit code."""
        for c in self.children:
            if c.process.poll() is None:
                c.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        codes: dict[str, int | None] = {}
        for c in self.children:
            try:
                codes[c.name] = c.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killed", c.name, timeout_s)
                c.process.kill()
                codes[c.name] = c.process.wait()
            c.log_file.close()
        self.children.clear()
        return codes

    def tail(self, child: Child, lines: int = 15) -> str:
        try:
            return "\n".join(child.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
