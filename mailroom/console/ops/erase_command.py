"""``mailroom erase (--message-id ID | --address ADDR) [--execute] [--by NAME] [--json]`` and
``mailroom erase --history``."""

from __future__ import annotations

import argparse
import json

from mailroom.codec import Codec
from mailroom.console.ops.erase import Found, Selector, execute, find, history
from mailroom.db import connect
from mailroom.errors import ConfigError
from mailroom.settings import Settings
from persist.privacy import blob_grace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "erase", help="remove an email or everything of an address, so that no replay brings "
        "it back (dry run unless --execute)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--message-id", metavar="ID", help="the email's Message-ID")
    what.add_argument("--address", metavar="ADDR",
                      help="every email the address sent, received or was copied on; its mail "
                      "is never tracked again")
    what.add_argument("--history", action="store_true", help="the latest erasures' audit records")
    p.add_argument("--execute", action="store_true", help="erase (default: dry run)")
    p.add_argument("--by", default="", metavar="NAME",
                   help="who asked, for the audit record (default: the login name)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def selector(args: argparse.Namespace) -> Selector:
    if args.message_id is not None:
        return Selector.message_id(args.message_id)
    if args.address is not None:
        return Selector.address(args.address)
    raise ConfigError("give --message-id or --address")


def render(found: Found) -> str:
    lines = [f"erasure by {found.selector.kind} (digest {found.selector.digest[:16]}…):"]
    for table, n in found.summary().items():
        lines.append(f"  {table:<28} {n:>6}")
    if found.activity_ids:
        lines.append("  email activity ids: " + ", ".join(map(str, found.activity_ids)))
    if found.case_ids:
        lines.append("  case ids: " + ", ".join(map(str, found.case_ids)))
    if found.cases_kept:
        lines.append("  case ids kept, title erased (other emails regard them): "
                     + ", ".join(map(str, found.cases_kept)))
    if found.kept:
        lines.append("  not erased here, imported reference records that have the address "
                     "(erase them in the CRM, then import again): " + ", ".join(found.kept))
    return "\n".join(lines)


def blobs_line(found: Found) -> str:
    line = f"  blobs deleted now: {len(found.blobs_deleted)} of {len(found.blob_refs)}"
    if found.blobs_due_by is not None:
        # Put within the grace: an email with the same file may still be in flight.
        line += (f"; persist deletes the rest by {found.blobs_due_by:%Y-%m-%d %H:%M:%S %Z} "
                 "unless mail stored or parked since carries them")
    return line


def run(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        if args.history:
            rows = history(conn)
            if args.json:
                print(json.dumps([{"id": r[0], "selector": r[1], "erased_at": r[2].isoformat(),
                                   "by": r[3], "counts": r[4]} for r in rows], indent=2))
            for r in [] if args.json else rows:
                counts = ", ".join(f"{k} {v}" for k, v in r[4].items() if v)
                print(f"{r[0]:>5}  {r[2]:%Y-%m-%d %H:%M:%S}  {r[1]:<10}  {r[3]:<12}  {counts}")
            return 0
        codec = Codec.from_settings(settings)
        chosen = selector(args)
        if not args.execute:
            found = find(conn, codec, chosen)
            conn.rollback()
            print(json.dumps(found.as_json(), indent=2) if args.json else render(found))
            if not args.json:
                print("dry run: nothing changed (add --execute to erase)")
            return 0
        erasure_id, found = execute(conn, codec, chosen, args.by, blob_grace(settings))
        if args.json:
            print(json.dumps({"erasure": erasure_id, **found.as_json()}, indent=2))
        else:
            print(render(found))
            if found.blob_refs:
                print(blobs_line(found))
            print(f"erased: audit record {erasure_id} (mailroom erase --history); route and "
                  "persist skip this mail from now on, also in replays")
    return 0
