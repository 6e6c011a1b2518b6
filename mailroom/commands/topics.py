"""``mailroom topics create|list``: the brief's topics on the configured cluster.

``create`` makes missing topics and verifies existing ones (fixing configs where nothing is
lost); ``list`` only looks. Both exit 1 when a topic is missing or still differs, so CI and
``make`` stop on a cluster that does not match the settings.
"""

from __future__ import annotations

import argparse

from kafka.errors import KafkaError

from mailroom import kafka, topics
from mailroom.errors import TransientError
from mailroom.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("topics", help="create or verify the Kafka topics")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create missing topics, verify existing ones")
    create.add_argument("--no-fix", action="store_true",
                        help="only report configs that differ, change nothing")
    create.add_argument("--apply-unsafe", action="store_true",
                        help="also apply config changes that delete data (shorter retention, "
                        "another cleanup policy)")
    create.set_defaults(func=create_cmd)
    listing = actions.add_parser("list", help="each topic's partitions, replicas and configs")
    listing.set_defaults(func=list_cmd)


def create_cmd(settings: Settings, args: argparse.Namespace) -> int:
    try:
        admin = kafka.make_admin(settings)
        try:
            reports = topics.ensure_topics(admin, topics.topic_specs(settings),
                                           fix=not args.no_fix, apply_unsafe=args.apply_unsafe)
        finally:
            admin.close()
    except KafkaError as exc:
        raise TransientError(f"Kafka at {settings.bootstrap_servers}: {exc!r}") from exc
    for report in reports:
        print("\n".join(report.lines()))
    return 1 if any(r.status in ("differs", "missing") for r in reports) else 0


def list_cmd(settings: Settings, args: argparse.Namespace) -> int:
    specs = topics.topic_specs(settings)
    try:
        admin = kafka.make_admin(settings)
        try:
            states = topics.read_state(admin, [s.name for s in specs])
        finally:
            admin.close()
    except KafkaError as exc:
        raise TransientError(f"Kafka at {settings.bootstrap_servers}: {exc!r}") from exc
    problems = 0
    for spec in specs:
        state = states.get(spec.name)
        if state is None:
            problems += 1
            print(f"MISSING  {spec.name} (run: mailroom topics create)")
            continue
        diffs = topics.compare(spec, state)
        problems += bool(diffs)
        shown = " ".join(f"{k}={state.configs.get(k, '')}" for k in sorted(spec.configs))
        print(f"{'DIFFERS' if diffs else 'OK':<8} {spec.name} partitions={state.partitions} "
              f"replication_factor={state.replication_factor} {shown}")
        for diff in diffs:
            print(f"         {diff}")
    return 1 if problems else 0
