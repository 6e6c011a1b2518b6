"""PostgreSQL 15 from Debian's packages: a private cluster in ``<state>/postgres``.

PostgreSQL refuses to run as root, and the state folder belongs to whoever ran ``mailroom``;
so as root the cluster lives in subfolders owned by the ``postgres`` user and every server
command runs through ``runuser``. Trust authentication on loopback only: this is the local
stack, listening on 127.0.0.1 and a private socket folder. ``up`` also makes the ``mailroom``
role (LOGIN, CREATEDB, CREATEROLE: later stages create their own roles) and database.
"""

from __future__ import annotations

from pathlib import Path

from mailroom.console.stack import process
from mailroom.console.stack.process import ServiceStatus, StackError
from mailroom.settings import Settings

NAME = "postgres"
BIN = Path("/usr/lib/postgresql/15/bin")
OS_USER = "postgres"
SUPERUSER = "postgres"
ROLE = "mailroom"
DATABASE = "mailroom"
MAX_CONNECTIONS = 200  # every test and stage process holds a few; 100 runs out under pytest


def home(settings: Settings) -> Path:
    return settings.state_path / "postgres"


def data_dir(settings: Settings) -> Path:
    return home(settings) / "data"


def socket_dir(settings: Settings) -> Path:
    return home(settings) / "run"


def log_file(settings: Settings) -> Path:
    return home(settings) / "run" / "postgres.log"


def _marker(settings: Settings) -> str:
    return str(data_dir(settings))


def _pid(settings: Settings) -> int | None:
    return process.read_pid(data_dir(settings) / "postmaster.pid")


def _bin(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise StackError(f"{path} not found: run deploy/install-system-packages.sh")
    return str(path)


def _prepare(settings: Settings) -> None:
    h = home(settings)
    h.mkdir(parents=True, exist_ok=True)
    for folder in (data_dir(settings), socket_dir(settings)):
        folder.mkdir(mode=0o700, exist_ok=True)
        process.chown(folder, OS_USER)
    if (data_dir(settings) / "PG_VERSION").exists():
        return
    process.run(
        process.as_user(OS_USER, [
            _bin("initdb"), "-D", str(data_dir(settings)), "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
        ]),
        "initdb",
    )
    # The cluster's own settings, appended once after initdb (later lines win in postgresql.conf).
    conf = "\n".join([
        "",
        "# --- mailroom local stack ---",
        f"max_connections = {MAX_CONNECTIONS}",
        # A local, throw-away cluster: durability against an OS crash is not worth the fsyncs
        # (a killed *process* still loses nothing that was committed).
        "fsync = off",
        "full_page_writes = off",
        "log_min_messages = warning",
        "",
    ])
    with open(data_dir(settings) / "postgresql.conf", "a") as handle:
        handle.write(conf)


def _options(settings: Settings) -> str:
    # Port and addresses on the command line so a changed setting applies on the next start.
    return (f"-p {settings.postgres_port} -k {socket_dir(settings)} "
            "-c listen_addresses=127.0.0.1")


def _ensure_database(settings: Settings) -> None:
    import psycopg  # imported late: `stack status` stays fast
    from psycopg import sql

    with psycopg.connect(
        host="127.0.0.1", port=settings.postgres_port, user=SUPERUSER, dbname="postgres",
        autocommit=True, connect_timeout=10,
    ) as conn:
        if not conn.execute("select 1 from pg_roles where rolname = %s", (ROLE,)).fetchone():
            conn.execute(sql.SQL("create role {} login createdb createrole").format(
                sql.Identifier(ROLE)))
        if not conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)
                            ).fetchone():
            conn.execute(sql.SQL("create database {} owner {}").format(
                sql.Identifier(DATABASE), sql.Identifier(ROLE)))


def up(settings: Settings) -> str:
    pid = _pid(settings)
    if process.alive(pid, _marker(settings)):
        _ensure_database(settings)
        return f"already running (pid {pid})"
    if process.listening(settings.postgres_port):
        raise StackError(
            f"port {settings.postgres_port} is taken by a process this stack did not start; "
            "stop it or set MAILROOM_POSTGRES_PORT"
        )
    _prepare(settings)
    # A postmaster of this cluster always has the data folder on its command line, so a
    # postmaster.pid naming any other process is stale (after a reboot the pid may even be
    # reused by another postgres process, and the server would then refuse to start).
    (data_dir(settings) / "postmaster.pid").unlink(missing_ok=True)
    # pg_ctl -w waits until the server accepts connections; the new session keeps the server
    # out of our terminal's signals.
    log = log_file(settings)
    process.run(
        process.as_user(OS_USER, [
            _bin("pg_ctl"), "-D", str(data_dir(settings)), "-l", str(log), "-w", "-t", "60",
            "-o", _options(settings), "start",
        ]),
        f"starting PostgreSQL (log {log})",
        log=home(settings) / "pg_ctl.out", start_new_session=True,
    )
    _ensure_database(settings)
    return f"started (pid {_pid(settings)})"


def down(settings: Settings) -> str:
    pid = _pid(settings)
    if not process.alive(pid, _marker(settings)):
        return "not running"
    process.run(
        process.as_user(OS_USER, [
            _bin("pg_ctl"), "-D", str(data_dir(settings)), "-w", "-t", "60", "-m", "fast",
            "stop",
        ]),
        "stopping PostgreSQL",
    )
    return f"stopped (pid {pid})"


def status(settings: Settings) -> ServiceStatus:
    ports = (settings.postgres_port,)
    pid = _pid(settings)
    if process.alive(pid, _marker(settings)):
        state = "running" if process.listening(settings.postgres_port) else "starting"
        return ServiceStatus(NAME, ports, pid, state)
    if process.listening(settings.postgres_port):
        return ServiceStatus(NAME, ports, None, "port taken by a process this stack did not start")
    return ServiceStatus(NAME, ports, None, "stopped")
