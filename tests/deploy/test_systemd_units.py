"""The systemd units and their environment files (deploy/systemd/), checked against the code.

``systemd-analyze verify`` checks the units as systemd itself reads them, where it is installed
(on a machine without it that part is skipped, saying so); the rest parses the files and
cross-checks them: one instance per stage of ``mailroom run``, settings that exist, secrets only
in the credentials files, a stop timeout above the batch bound, a port per process.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_files import (
    LIBPQ_LOGIN,
    SYSTEMD,
    read_env_file,
    read_unit,
    secret_setting_names,
    setting_names,
    settings_from,
    value,
    values,
)
from psycopg.conninfo import conninfo_to_dict

from mailroom import kafka
from mailroom.commands.run import STAGES
from mailroom.console.doctor import check_transport

TEMPLATE = SYSTEMD / "mailroom@.service"
WEB = SYSTEMD / "mailroom-web.service"
SHARED = SYSTEMD / "mailroom.env"
#: Where the unit files expect each file on the host, and the example shipped for it.
INSTALLED = {
    "/etc/mailroom/mailroom.env": lambda instance: SHARED,
    "/etc/mailroom/stages/%i.env": lambda instance: SYSTEMD / "stages" / f"{instance}.env",
    "/etc/mailroom/credentials/%i.env":
        lambda instance: SYSTEMD / "credentials" / f"{instance}.env.example",
    "/etc/mailroom/credentials/web.env":
        lambda instance: SYSTEMD / "credentials" / "web.env.example",
}
#: Processes that log in to mailboxes, and so decrypt their credentials.
MAILBOX_LOGIN = {"ingest", "web"}
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "PrivateDevices": "yes", "DynamicUser": "yes",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes",
    "LockPersonality": "yes", "CapabilityBoundingSet": "", "SystemCallArchitectures": "native",
    "ProtectProc": "invisible", "UMask": "0077", "LimitCORE": "0",
}


def environment(unit: Path, instance: str) -> dict[str, str]:
    """The environment systemd gives the instance: Environment= first, then each
    EnvironmentFile= in order (later ones override)."""
    service = read_unit(unit)["Service"]
    env = {}
    for assignment in values(service, "Environment"):
        key, _, val = assignment.partition("=")
        env[key] = val.replace("%i", instance)
    for path in values(service, "EnvironmentFile"):
        env.update(read_env_file(INSTALLED[path.lstrip("-")](instance)))
    return env


def instances() -> list[str]:
    return sorted(p.stem for p in (SYSTEMD / "stages").glob("*.env"))


def test_one_instance_per_stage_of_mailroom_run() -> None:
    assert instances() == sorted(STAGES)
    for stage in STAGES:
        assert (SYSTEMD / "credentials" / f"{stage}.env.example").is_file(), stage
    service = read_unit(TEMPLATE)["Service"]
    assert value(service, "ExecStart").split()[1:] == ["run", "%i"]
    assert value(read_unit(WEB)["Service"], "ExecStart").split()[1] == "web"


@pytest.mark.parametrize("unit", [TEMPLATE, WEB], ids=lambda p: p.name)
def test_unit_restarts_stops_gracefully_and_is_hardened(unit: Path) -> None:
    service = read_unit(unit)["Service"]
    assert value(service, "Restart") == "on-failure"
    assert value(service, "KillSignal") == "SIGTERM"
    # SIGTERM to the main process only: it winds down its own worker processes.
    assert value(service, "KillMode") == "mixed"
    for key, expected in HARDENING.items():
        assert value(service, key) == expected, key
    assert "@system-service" in value(service, "SystemCallFilter")
    files = values(service, "EnvironmentFile")
    assert files[0] == "/etc/mailroom/mailroom.env" and files[-1].startswith(
        "/etc/mailroom/credentials/"), "the credentials file comes last: nothing overrides it"
    assert not [f for f in files if f.startswith("-")], "a missing file must stop the start"
    assert read_unit(unit)["Install"] == [("WantedBy", "multi-user.target")]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stop_timeout_outlasts_a_batch_and_its_commit(stage: str) -> None:
    s = settings_from(environment(TEMPLATE, stage))
    timeout_s = int(value(read_unit(TEMPLATE)["Service"], "TimeoutStopSec"))
    # No stage holds a batch longer than the max poll interval; the flush and the commit after
    # it each wait at most the request timeout.
    assert timeout_s > s.kafka_max_poll_interval_ms / 1000 + s.kafka_request_timeout_ms / 1000


def test_files_hold_only_settings_and_secrets_only_in_credentials() -> None:
    settings_, secret = setting_names(), secret_setting_names()
    for path in [SHARED, *(SYSTEMD / "stages").glob("*.env")]:
        names = set(read_env_file(path))
        assert names <= settings_, f"{path.name}: not settings: {sorted(names - settings_)}"
        assert not names & (secret | LIBPQ_LOGIN), f"{path.name}: a secret outside credentials"
    for path in (SYSTEMD / "credentials").glob("*.env.example"):
        names = set(read_env_file(path))
        process = path.name.removesuffix(".env.example")
        assert names <= secret | LIBPQ_LOGIN, f"{path.name}: {sorted(names - secret)}"
        # Only where it is needed: unwrap parses what anyone can mail.
        assert ("MAILROOM_SECRET_KEY" in names) == (process in MAILBOX_LOGIN), path.name
        assert (names >= LIBPQ_LOGIN) == (process != "stats"), path.name
    for unit in (TEMPLATE, WEB):
        for assignment in values(read_unit(unit)["Service"], "Environment"):
            name = assignment.partition("=")[0]
            assert name in settings_ or name.startswith("PYTHON"), name


def test_shared_settings_are_a_verified_secure_setup() -> None:
    s = settings_from(environment(TEMPLATE, "unwrap"))
    kafka.check(s)
    findings = list(check_transport(s))
    assert not findings, [f.message for f in findings]
    assert "password" not in conninfo_to_dict(s.database_url)  # in the credentials file


def test_every_process_on_a_host_has_its_own_metrics_port() -> None:
    ports = {stage: settings_from(environment(TEMPLATE, stage)).metrics_port for stage in STAGES}
    assert all(ports.values()), ports
    assert len(set(ports.values())) == len(ports), ports
    web = re.search(r"--port (\d+)", value(read_unit(WEB)["Service"], "ExecStart"))
    assert web and int(web.group(1)) not in ports.values()


def test_each_instance_has_its_own_state_folder() -> None:
    for unit, instance in [(TEMPLATE, "%i"), (WEB, "web")]:
        service = read_unit(unit)["Service"]
        state = value(service, "StateDirectory")
        assert state == f"mailroom/{instance}"
        assert f"MAILROOM_STATE_DIR=%S/{state}" in values(service, "Environment")
        assert value(service, "WorkingDirectory") == f"%S/{state}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed on this machine")
def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists: point it at this Mailroom's, and change
    # nothing else.
    program = Path(sys.executable).with_name("mailroom")
    assert program.exists()
    for unit in (TEMPLATE, WEB):
        text = unit.read_text().replace("/opt/mailroom/bin/mailroom", str(program))
        (tmp_path / unit.name).write_text(text)
    names = [f"mailroom@{stage}.service" for stage in STAGES] + [WEB.name]
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in names)],
        capture_output=True, text=True, timeout=120,
    )
    # Unknown keys and bad values are only warnings (exit 0): any output is a failure here.
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), (
        done.stdout + done.stderr)
