"""The ``mailroom`` command: one entry point, one sub-command module per area.

Each module listed in :data:`COMMAND_MODULES` has ``register(subparsers)``, which adds its
sub-commands and sets ``func(settings, args) -> int`` on each. The list is explicit on purpose:
a missing or misspelt module fails at start-up instead of silently dropping a command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from mailroom import log, settings
from mailroom.errors import MailroomError
from mailroom.redact import Redactor

COMMAND_MODULES: tuple[str, ...] = (
    "mailroom.commands.config",
    "mailroom.console.stack.commands",
    "mailroom.commands.schemas",
    "mailroom.commands.topics",
    "mailroom.commands.db",
    "mailroom.commands.import_records",
    "mailroom.commands.run",
    "ingest.commands",
    "mailroom.console.ops.approval",  # after ingest.commands: adds to its `mailbox`
    "mailroom.console.ops.backfill_command",  # likewise
    "route.commands",
    "mailroom.console.ops.rules_command",  # after route.commands: adds to its `rules`
    "route.privacy_command",
    "unwrap.commands",
    "mailroom.console.doctor",
    "mailroom.console.demo.commands",
    "mailroom.console.ops.lag_command",
    "mailroom.console.ops.replay_command",
    "mailroom.console.web.command",
    "mailroom.console.ops.dlq_command",
    "mailroom.console.ops.trace_command",
    "mailroom.console.ops.erase_command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailroom",
        description="Turn incoming email from monitored mailboxes into CRM records.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    redact = Redactor()  # patterns only, until the settings (and their secrets) are known
    try:
        current = settings.load()
        redact = Redactor.from_settings(current)
        log.configure(current.log_level, stage=getattr(args, "stage", "") or "", redact=redact)
        return int(args.func(current, args) or 0)
    except MailroomError as exc:
        print(f"mailroom: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:
        # A bug or a library's error: the traceback helps, a password in it must not leak
        # (psycopg and kafka errors may echo connection strings).
        print(redact(traceback.format_exc()), file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    sys.exit(main())
