"""``mailroom import KIND FILE.csv``: load reference records, all or nothing (docs/database.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mailroom.db import connect
from mailroom.db.reference_csv import KINDS, RowError
from mailroom.db.reference_import import ImportRejected, import_csv, kind_named
from mailroom.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "import", help="load users, queues, contacts, accounts or leads from a CSV file"
    )
    parser.add_argument("kind", choices=list(KINDS), help="which records the file holds")
    parser.add_argument("file", type=Path, help="CSV file with a header row (see docs)")
    parser.add_argument("--schema", default=None, help="import into this schema (tests)")
    parser.set_defaults(func=run_import)


def run_import(settings: Settings, args: argparse.Namespace) -> int:
    kind = kind_named(args.kind)
    source = str(args.file)
    try:
        # utf-8-sig: spreadsheet programs start their CSV exports with a byte-order mark.
        with args.file.open(newline="", encoding="utf-8-sig") as lines, connect(
            settings, schema=args.schema
        ) as conn:
            result = import_csv(conn, kind, lines, source=source)
    except OSError as exc:
        print(f"mailroom: {source}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        error = RowError(0, "", f"not UTF-8 text (byte {exc.start}); save the file as UTF-8")
        print(f"mailroom: {ImportRejected(source, [error])}", file=sys.stderr)
        return 1
    except ImportRejected as exc:
        print(f"mailroom: {exc}", file=sys.stderr)
        return 1
    print(result)
    return 0
