"""The local Dovecot's login processes in high-performance mode: a few long-lived processes log
every client in, instead of a new process forked and executed per connection (Dovecot's
default). Measured with ``bench/ingest_scale.py``: that fork and exec was most of a login's CPU
on the server, and what capped how many mailboxes one ingest process polls (docs/ingest.md).

A Dovecot of its own (state folder and ports of the test), started and stopped here.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from mailroom.console.stack import dovecot
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

LOGINS = 6


def _free_ports(n: int) -> list[int]:
    """``n`` free ports below the kernel's ephemeral range (none handed out meanwhile)."""
    ports: list[int] = []
    while len(ports) < n:
        port = random.SystemRandom().randrange(20_000, 32_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture
def private_dovecot() -> Iterator[Settings]:
    if os.geteuid() != 0:
        pytest.skip("Dovecot's master process starts as root")
    if shutil.which("dovecot", path="/usr/sbin:/usr/bin") is None:
        pytest.skip("Dovecot is not installed (deploy/install-system-packages.sh)")
    # Not under pytest's tmp_path: its folders are root's alone, and Dovecot's auth process
    # (user dovecot) reads the users' files there.
    state = Path(tempfile.mkdtemp(prefix="mailroom-dovecot-"))
    state.chmod(0o755)
    p = _free_ports(7)
    settings = Settings(state_dir=str(state), imap_port=p[0], imaps_port=p[1],
                        pop3_port=p[2], pop3s_port=p[3], dovecot_oauth2_port=p[4],
                        managesieve_port=p[5], lmtp_port=p[6])
    try:
        dovecot.up(settings)
        yield settings
    finally:
        dovecot.down(settings)
        shutil.rmtree(state, ignore_errors=True)


def _login_processes(settings: Settings) -> set[int]:
    """The pids of the instance's imap-login processes (Dovecot names them
    ``dovecot-<instance>/imap-login``)."""
    name = f"mailroom-{settings.imap_port}/imap-login"
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if name.encode() in cmdline:
                found.add(int(entry.name))
    return found


def test_logins_are_served_by_the_same_few_login_processes(private_dovecot: Settings) -> None:
    s = private_dovecot
    dovecot.add_user(s, "loginmode", "secret-pw")
    before = _login_processes(s)
    assert len(before) == dovecot.LOGIN_PROCESSES, before
    seen: set[int] = set()
    for _ in range(LOGINS):
        with IMAPClient("127.0.0.1", port=s.imap_port, ssl=False, timeout=30) as imap:
            imap.login("loginmode", "secret-pw")
            imap.select_folder("INBOX", readonly=True)
            # High-security mode would show a login process of this connection's own here.
            seen |= _login_processes(s)
    assert seen == before, f"login processes came and went: {sorted(seen - before)}"
