"""``mailroom stack up|down|status``: the local embedded stack on 127.0.0.1.

``up`` starts what is not running and leaves running services alone; ``down`` stops only what
``up`` started (pid files under the state folder, checked against the process's command line);
``status`` prints one line per service and exits 1 unless all of them run.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from mailroom.errors import ConfigError
from mailroom.settings import Settings
from mailroom.stack import dovecot, kafka, postgres, process
from mailroom.stack.process import StackError

# Start order: the database and mail server are quick; the broker takes longest.
SERVICES: tuple[ModuleType, ...] = (postgres, dovecot, kafka)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("stack", help="the local embedded stack: Kafka, PostgreSQL, Dovecot")
    stack_sub = parser.add_subparsers(dest="stack_command", required=True, metavar="ACTION")
    for name, func, text in (
        ("up", up, "start every service that is not running (idempotent)"),
        ("down", down, "stop the services 'up' started"),
        ("status", status, "each service, its ports, pid and state; exit 1 unless all run"),
    ):
        action = stack_sub.add_parser(name, help=text)
        action.add_argument("services", nargs="*", metavar="SERVICE",
                            help="only these (postgres, dovecot, kafka); default: all")
        action.set_defaults(func=func)


def _selected(args: argparse.Namespace) -> list[ModuleType]:
    wanted = set(getattr(args, "services", None) or [])
    unknown = wanted - {s.NAME for s in SERVICES}
    if unknown:
        raise ConfigError(f"unknown service(s) {sorted(unknown)}: use postgres, dovecot, kafka")
    return [s for s in SERVICES if not wanted or s.NAME in wanted]


def _lock(settings: Settings):  # noqa: ANN202
    return process.locked(settings.state_path / "stack.lock")


def up(settings: Settings, args: argparse.Namespace) -> int:
    failed = 0
    with _lock(settings):
        for service in _selected(args):
            try:
                print(f"{service.NAME:9} {service.up(settings)}", flush=True)
            except StackError as exc:
                # The other services still start: one busy port should not block all work.
                print(f"{service.NAME:9} FAILED: {exc}", file=sys.stderr, flush=True)
                failed += 1
    return 1 if failed else 0


def down(settings: Settings, args: argparse.Namespace) -> int:
    failed = 0
    with _lock(settings):
        for service in reversed(_selected(args)):
            try:
                print(f"{service.NAME:9} {service.down(settings)}", flush=True)
            except StackError as exc:
                print(f"{service.NAME:9} FAILED: {exc}", file=sys.stderr, flush=True)
                failed += 1
    return 1 if failed else 0


def status(settings: Settings, args: argparse.Namespace) -> int:
    services = _selected(args)
    print(f"{'SERVICE':9} {'PORTS':24} {'PID':>8}  STATE")
    all_running = True
    for service in services:
        st = service.status(settings)
        ports = ",".join(str(p) for p in st.ports)
        print(f"{st.name:9} {ports:24} {st.pid or '-':>8}  {st.state}")
        all_running = all_running and st.running
    print(f"state folder: {settings.state_path}")
    return 0 if all_running else 1
