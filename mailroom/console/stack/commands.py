"""``mailroom stack up|down|status``: the local embedded stack on 127.0.0.1.

``up`` starts what is not running and leaves running services alone; ``down`` stops only what
``up`` started (pid files under the state folder, checked against the process's command line);
``status`` prints one line per service and exits 1 unless all of them run.

``up --brokers 3`` also starts a three-broker Kafka cluster *beside* the single broker
(:mod:`.cluster`: own ports and folder; the single broker, which everyone's tests use, is left
as it is); ``mailroom stack cluster up|down|status|env`` handles that cluster alone, and ``env``
prints the settings that point commands at it. ``down`` without services stops the cluster too;
``status`` lists its nodes when it exists, without counting them in its exit status.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from mailroom.console.stack import cluster, dovecot, kafka, postgres, process
from mailroom.console.stack.process import ServiceStatus, StackError
from mailroom.errors import ConfigError
from mailroom.settings import Settings

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
        if name == "up":
            action.add_argument(
                "--brokers", type=int, default=1, metavar="N",
                help="N > 1: also a Kafka cluster of N brokers beside the single broker (its "
                "own ports and folder; `mailroom stack cluster env` points commands at it)")
    _register_cluster(stack_sub)


def _register_cluster(stack_sub: argparse._SubParsersAction) -> None:
    parser = stack_sub.add_parser(
        "cluster", help="a Kafka cluster of several brokers beside the single broker")
    actions = parser.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    up_ = actions.add_parser("up", help="start every node that is not running (idempotent)")
    up_.add_argument("--brokers", type=int, default=cluster.DEFAULT_BROKERS, metavar="N",
                     help=f"nodes, each broker and controller (default {cluster.DEFAULT_BROKERS}"
                     "; fixed when the cluster is first made)")
    up_.set_defaults(func=cluster_up)
    down_ = actions.add_parser("down", help="stop every node")
    down_.add_argument("--wipe", action="store_true",
                       help="also delete the cluster's folder and data")
    down_.set_defaults(func=cluster_down)
    actions.add_parser("status", help="each node, its ports, pid and state; exit 1 unless "
                       "all run").set_defaults(func=cluster_status)
    actions.add_parser("env", help="the settings that point mailroom at the cluster, as shell "
                       "exports (eval \"$(mailroom stack cluster env)\")"
                       ).set_defaults(func=cluster_env)


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
    brokers = getattr(args, "brokers", 1)
    if brokers > 1:
        failed += cluster_up(settings, argparse.Namespace(brokers=brokers))
    return 1 if failed else 0


def cluster_up(settings: Settings, args: argparse.Namespace) -> int:
    try:
        lines = cluster.up(settings, args.brokers)
    except StackError as exc:
        print(f"{cluster.NAME:9} FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    print("\n".join(lines))
    print(f"{cluster.NAME:9} {args.brokers} brokers at {cluster.bootstrap(settings)}; "
          'point commands at it with: eval "$(mailroom stack cluster env)"', flush=True)
    return 0


def cluster_down(settings: Settings, args: argparse.Namespace) -> int:
    try:
        print("\n".join(cluster.down(settings, wipe=args.wipe)), flush=True)
    except StackError as exc:
        print(f"{cluster.NAME:9} FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def cluster_status(settings: Settings, args: argparse.Namespace) -> int:
    nodes = cluster.status(settings)
    _print_statuses(nodes)
    if not nodes:
        print(f"no cluster in {cluster.home(settings)}: mailroom stack cluster up")
        return 1
    print(f"bootstrap: {cluster.bootstrap(settings)}")
    return 0 if all(n.running for n in nodes) else 1


def cluster_env(settings: Settings, args: argparse.Namespace) -> int:
    for name, value in cluster.environment(settings).items():
        print(f"export {name}={value}")
    return 0


def down(settings: Settings, args: argparse.Namespace) -> int:
    failed = 0
    if not getattr(args, "services", None) and cluster.formed(settings) is not None:
        failed += cluster_down(settings, argparse.Namespace(wipe=False))
    with _lock(settings):
        for service in reversed(_selected(args)):
            try:
                print(f"{service.NAME:9} {service.down(settings)}", flush=True)
            except StackError as exc:
                print(f"{service.NAME:9} FAILED: {exc}", file=sys.stderr, flush=True)
                failed += 1
    return 1 if failed else 0


def status(settings: Settings, args: argparse.Namespace) -> int:
    statuses = [service.status(settings) for service in _selected(args)]
    _print_statuses(statuses)
    if not getattr(args, "services", None):
        # The cluster is optional: shown when it exists, never a reason for exit 1.
        _print_statuses(cluster.status(settings), header=False)
    print(f"state folder: {settings.state_path}")
    return 0 if all(st.running for st in statuses) else 1


def _print_statuses(statuses: list[ServiceStatus], header: bool = True) -> None:
    if header:
        print(f"{'SERVICE':9} {'PORTS':24} {'PID':>8}  STATE")
    for st in statuses:
        ports = ",".join(str(p) for p in st.ports)
        print(f"{st.name:9} {ports:24} {st.pid or '-':>8}  {st.state}")
