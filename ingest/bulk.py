"""``mailroom mailbox import FILE.csv``: many mailboxes of one profile in one transaction.

``mailbox add`` is one process, one transaction and one publish per mailbox: fine for a few,
hours for ten thousand. The import reads a CSV (header ``address`` required; ``username``,
``owner``, ``owner_id``, ``folders`` — ``;``-separated, ``NAME[:outgoing]`` —, ``password``
optional), validates every row before anything is written, stores them all or none, and
publishes them to the mailboxes topic in one go.

Passwords: a ``password`` column (the file then holds secrets: keep it as carefully as the
mailboxes themselves, and delete it after), else the one given with ``--password-env``.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

from ingest import credentials, store
from ingest.model import AfterIngest, Mailbox, OwnerKind, parse_folders
from mailroom.db import connect
from mailroom.errors import ConfigError
from mailroom.settings import Settings

COLUMNS = ("address", "username", "owner", "owner_id", "folders", "password")


def register(mb: argparse._SubParsersAction) -> None:
    imp = mb.add_parser("import", help="add many mailboxes of one profile from a CSV file "
                        f"(columns: {', '.join(COLUMNS)}; address required)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--profile", required=True, help="email server profile of every row")
    imp.add_argument("--password-env", help="environment variable holding the password of "
                     "rows without a password column")
    imp.add_argument("--after", choices=[x.value for x in AfterIngest], default="flag")
    imp.set_defaults(func=mailbox_import)


def read(path: Path, profile_id: int, default_secret: bytes | None, settings: Settings,
         after: AfterIngest) -> list[Mailbox]:
    """Every row as a mailbox (credentials encrypted); a bad row fails the whole file."""
    fernet = credentials.fernet(settings)  # one key derivation for the file, not one a row
    out: list[Mailbox] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        unknown = set(reader.fieldnames or ()) - set(COLUMNS)
        if "address" not in (reader.fieldnames or ()) or unknown:
            raise ConfigError(f"{path}: the header must name 'address' and only columns of "
                              f"{', '.join(COLUMNS)} (unknown: {', '.join(sorted(unknown))})")
        for line, row in enumerate(reader, start=2):
            clear = row.get("password") or ""
            if clear:
                secret = fernet.encrypt(clear.encode())
            elif default_secret is not None:
                secret = default_secret
            else:
                raise ConfigError(f"{path}:{line}: no password (column or --password-env)")
            folders = [x for x in (row.get("folders") or "").split(";") if x]
            address = (row.get("address") or "").strip()
            out.append(Mailbox(
                address=address, owner_kind=OwnerKind(row.get("owner") or "user"),
                owner_id=row.get("owner_id") or "", profile_id=profile_id,
                username=row.get("username") or address, secret=secret,
                folders=parse_folders(folders or None), after_ingest=after,
            ))
    return out


def mailbox_import(settings: Settings, args: argparse.Namespace) -> int:
    from ingest.commands import _publish

    default_secret = None
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise ConfigError(f"environment variable {args.password_env} is not set")
        default_secret = credentials.encrypt(settings, value)
    with connect(settings) as conn:
        profile = store.profile(conn, args.profile)
        assert profile.id is not None
        boxes = read(args.file, profile.id, default_secret, settings, AfterIngest(args.after))
        ids = store.add_mailboxes(conn, profile, boxes)  # all or none: one transaction
    print(f"{len(ids)} mailbox(es) imported into profile {profile.name}")
    return _publish(settings, ids)
