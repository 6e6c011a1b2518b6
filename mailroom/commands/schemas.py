"""``mailroom schemas check|list``: the Avro schemas in ``schemas/`` and their compatibility.

``check`` is what CI runs and what someone adding a schema version runs first: every version must
be readable by, and able to read, every earlier version of the same name (old and new processes
run side by side during a rolling upgrade). Exit 1 on any problem.
"""

from __future__ import annotations

import argparse

from mailroom import schemas
from mailroom.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("schemas", help="list the Avro schemas or check their compatibility")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="every version compatible both ways with earlier")
    check.add_argument("--dir", help="schema folder (default: the configured one)")
    check.set_defaults(func=check_cmd)
    listing = actions.add_parser("list", help="every schema version and its fingerprint")
    listing.add_argument("--dir", help="schema folder (default: the configured one)")
    listing.set_defaults(func=list_cmd)


def _load(settings: Settings, args: argparse.Namespace) -> dict[str, list[schemas.SchemaVersion]]:
    return schemas.load_dir(args.dir or schemas.schemas_dir(settings))


def list_cmd(settings: Settings, args: argparse.Namespace) -> int:
    for versions in _load(settings, args).values():
        for v in versions:
            print(f"{v.label:<22} {v.fingerprint.hex()}  {v.path}")
    return 0


def check_cmd(settings: Settings, args: argparse.Namespace) -> int:
    failed = False
    for name, versions in _load(settings, args).items():
        problems = schemas.check_compatibility(versions)
        unnamed = [v for v in versions if not v.versioned_name]
        if problems:
            failed = True
            print(f"FAIL {name}: {len(problems)} incompatible pair(s)")
            for problem in problems:
                print(f"     {problem}")
        else:
            labels = ", ".join(f"v{v.version}" for v in versions)
            print(f"OK   {name}: {labels} compatible both ways")
        for v in unnamed:
            # Accepted as version 1, but the next version needs the explicit name to sort right.
            print(f"WARN {name}: rename {v.path.name} to {name}.v{v.version}.avsc")
    return 1 if failed else 0
