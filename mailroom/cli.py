"""The ``mailroom`` command: one entry point, one sub-command module per area.

Each module listed in :data:`COMMAND_MODULES` has ``register(subparsers)``, which adds its
sub-commands and sets ``func(settings, args) -> int`` on each. The list is explicit on purpose:
a missing or misspelt module fails at start-up instead of silently dropping a command.

A command line naming its command imports only the modules that register that command: a
``mailroom run STAGE`` process lives as long as the stage, and every other command's modules
(the mail clients, the other stages, the console's operations) would sit in its memory for
nothing — about 10 MB of a stage runner's. ``mailroom --help``, or a command no module declares,
builds the whole parser, so the help and the errors list every command as before.
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

#: Each sub-command module, with the top-level commands it adds or adds to, in the order of
#: ``mailroom --help``. A module that adds to another's command comes after it.
COMMAND_MODULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mailroom.commands.config", ("config",)),
    ("mailroom.console.stack.commands", ("stack",)),
    ("mailroom.commands.schemas", ("schemas",)),
    ("mailroom.commands.topics", ("topics",)),
    ("mailroom.commands.db", ("db",)),
    ("mailroom.commands.import_records", ("import",)),
    ("mailroom.commands.run", ("run",)),
    ("ingest.commands", ("profile", "mailbox")),
    ("mailroom.console.ops.approval", ("mailbox",)),  # adds to ingest.commands' `mailbox`
    ("mailroom.console.ops.backfill_command", ("mailbox",)),  # likewise
    ("route.commands", ("rules", "token")),
    ("mailroom.console.ops.rules_command", ("rules",)),  # adds to route.commands' `rules`
    ("route.privacy_command", ("privacy",)),
    ("unwrap.commands", ("unwrap",)),
    ("mailroom.console.doctor", ("doctor",)),
    ("mailroom.console.demo.commands", ("demo",)),
    ("mailroom.console.ops.lag_command", ("lag",)),
    ("mailroom.console.ops.replay_command", ("replay",)),
    ("mailroom.console.web.command", ("web",)),
    ("mailroom.console.ops.dlq_command", ("dlq",)),
    ("mailroom.console.ops.trace_command", ("trace",)),
    ("mailroom.console.ops.erase_command", ("erase",)),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; or, given a ``command`` some module declares, a parser with that
    command alone (the same sub-parser, so its help and errors are the same), having imported
    only the modules that make it."""
    parser = argparse.ArgumentParser(
        prog="mailroom",
        description="Turn incoming email from monitored mailboxes into CRM records.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = [(m, names) for m, names in COMMAND_MODULES if command in names]
    for module, names in wanted or COMMAND_MODULES:
        before = set(sub.choices)
        importlib.import_module(module).register(sub)
        added = set(sub.choices) - before
        # The table is what finds a command's modules: a module adding a command it does not
        # declare would make that command reachable only through the whole parser.
        if not added <= set(names) or not set(names) <= set(sub.choices):
            raise RuntimeError(f"{module} registers {sorted(added)}, declared {list(names)}")
    return parser


def command_named(argv: Sequence[str]) -> str | None:
    """The top-level command ``argv`` names, if its first word is one (the top-level parser
    has no option but ``--help``, so a command comes first or not at all)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_named(argv))
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
