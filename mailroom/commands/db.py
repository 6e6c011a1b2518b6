"""``mailroom db migrate|status``: apply the database migrations, or say which are pending."""

from __future__ import annotations

import argparse

from mailroom.db import connect
from mailroom.db.migrate import applied_migrations, discover, migrate, verify
from mailroom.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("db", help="database migrations")
    commands = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for name, func, text in (
        ("migrate", run_migrate, "apply every pending migration (safe to run concurrently)"),
        ("status", run_status, "list applied and pending migrations; exit 1 if any is pending"),
    ):
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument(
            "--schema", default=None,
            help="work in this schema instead of the default search_path (e.g. a test schema)",
        )
        cmd.set_defaults(func=func)


def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings, schema=args.schema, autocommit=True) as conn:
        # Read by the migration that creates and grants the per-stage roles (0051).
        conn.execute("SELECT set_config('mailroom.role_prefix', %s, false)",
                     (settings.database_role_prefix,))
        ran = migrate(conn)
    for label in ran:
        print(f"applied {label}")
    print(f"{len(ran)} migration(s) applied; database is current")
    return 0


def run_status(settings: Settings, args: argparse.Namespace) -> int:
    files = discover()
    with connect(settings, schema=args.schema, autocommit=True) as conn:
        applied = applied_migrations(conn)
    verify(applied, files)  # a changed applied file raises: exit 2 with the reason
    done = {a.version: a for a in applied}
    known = {m.version for m in files}
    pending = 0
    for m in files:
        if m.version in done:
            print(f"applied  {m.label}  {done[m.version].applied_at:%Y-%m-%d %H:%M:%S%z}")
        else:
            print(f"pending  {m.label}")
            pending += 1
    for a in applied:
        if a.version not in known:
            print(f"applied  {a.version:04d}_{a.name}  (unknown to this version of mailroom)")
    print(f"{pending} pending" if pending else "database is current")
    return 1 if pending else 0
