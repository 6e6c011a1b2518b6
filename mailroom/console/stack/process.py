"""Detached processes, pid files and ports: what every local-stack service needs.

A service is *ours* when a pid file under the state folder names a live process whose command
line carries a marker we chose (a path inside the state folder). The marker check is what makes
a stale pid file harmless: after a reboot, or on a CI machine that restored the folder, the pid
may belong to an unrelated process, and we must neither trust it nor kill it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailroom.errors import MailroomError


class StackError(MailroomError):
    """A local-stack service could not be set up, started or stopped; the message says why."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    ports: tuple[int, ...]
    pid: int | None
    state: str  # "running", "stopped", "starting" or a short reason ("port 15432 taken ...")

    @property
    def running(self) -> bool:
        return self.state == "running"


def cmdline(pid: int) -> str:
    """The process's command line with spaces between arguments; '' when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def alive(pid: int | None, marker: str) -> bool:
    """True when ``pid`` runs and its command line contains ``marker`` (not a reused pid)."""
    if not pid or pid <= 0:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and marker in cmdline(pid)


def read_pid(path: Path) -> int | None:
    """First line of a pid file as an int (postmaster.pid has more lines), None if unusable."""
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def listening(port: int) -> bool:
    """Whether any socket on this machine listens on TCP ``port`` (any address).

    Read from /proc/net/tcp{,6} rather than by connecting: a probe connection shows up in
    Dovecot's log as a disconnected client, and tests read that log. Falls back to connecting
    where /proc is not available.
    """
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            fields = line.split()
            # fields[1] is "ADDR:PORT" in hex, fields[3] the state; 0A is LISTEN.
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return port_open(port) if not found_table else False


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_for(check, timeout: float, what: str, interval: float = 0.25) -> None:  # noqa: ANN001
    """Call ``check()`` until it is true; raise :class:`StackError` naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


def spawn(argv: Sequence[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None
          ) -> int:
    """Start ``argv`` detached: own session, stdin closed, output appended to ``log_path``.

    A new session means the service neither gets the terminal's SIGHUP nor a Ctrl-C meant for
    ``mailroom``, so it outlives the command that started it.
    """
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=cwd, env=env, start_new_session=True, close_fds=True,
        )
    return proc.pid


def terminate(pid: int, marker: str, timeout: float = 30.0) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL and wait for it to be gone. Only a pid
    that passes :func:`alive`."""
    if not alive(pid, marker):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _gone(pid, marker, timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    # Not instant either on a loaded machine: the caller may reuse the ports or the folder next.
    _gone(pid, marker, KILL_WAIT_S)


KILL_WAIT_S = 30.0


def _gone(pid: int, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when we happen to be the parent
        if not alive(pid, marker):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def is_root() -> bool:
    return os.geteuid() == 0


def as_user(user: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run as ``user`` when we are root (PostgreSQL refuses to run as root)."""
    if not is_root():
        return list(argv)
    return ["runuser", "-u", user, "--", *argv]


def chown(path: Path, user: str) -> None:
    """Give ``path`` to ``user`` (only possible, and only needed, when running as root)."""
    if is_root():
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def run(argv: Sequence[str], what: str, log: Path | None = None, **kwargs) -> str:  # noqa: ANN003
    """Run a set-up command to completion and return its output; a failure raises with it.

    Give ``log`` for a command that leaves a daemon behind (``dovecot``, ``pg_ctl start``):
    the daemon inherits the command's stdout, so a pipe would never reach end-of-file and we
    would wait forever; a file does not have that problem.
    """
    try:
        if log is None:
            result = subprocess.run(list(argv), capture_output=True, text=True, **kwargs)
            output = result.stdout + result.stderr
        else:
            with open(log, "ab") as handle:
                result = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=handle,
                                        stderr=subprocess.STDOUT, **kwargs)
            output = tail(log)
    except FileNotFoundError as exc:
        raise StackError(
            f"{what}: {exc.filename} not found; run deploy/install-system-packages.sh"
        ) from exc
    if result.returncode != 0:
        raise StackError(f"{what} failed ({result.returncode}):\n{output}")
    return output


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock: two ``mailroom stack up`` at once (two engineers, two ``make``
    runs) must not both format storage or both start a broker."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
