"""``mailroom privacy exclude|list|remove|sensitivity``: the never-track lists and the
Sensitivity setting route honours (route/privacy.py)."""

from __future__ import annotations

import argparse
import json

from mailroom.db import connect
from mailroom.errors import ConfigError
from mailroom.settings import Settings
from route import privacy


def _scope_options(p: argparse.ArgumentParser, required: bool) -> None:
    scope = p.add_mutually_exclusive_group(required=required)
    scope.add_argument("--organisation", action="store_true", help="everyone's mail")
    scope.add_argument("--user", metavar="ID", help="mail of this user's mailboxes and forwards")
    scope.add_argument("--queue", metavar="ID", help="mail of this queue's mailboxes")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("privacy", help="never-track lists (addresses, domains) per user, queue "
                       "and organisation; the Sensitivity setting")
    psub = p.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")
    exclude = psub.add_parser("exclude", help="never track mail to or from these addresses or "
                              "domains (a domain covers its subdomains)")
    _scope_options(exclude, required=True)
    exclude.add_argument("--address", action="append", default=[], metavar="ADDR")
    exclude.add_argument("--domain", action="append", default=[], metavar="DOMAIN")
    exclude.add_argument("--note", default="", help="why (shown by list; never in a trace)")
    exclude.set_defaults(func=run_exclude)
    listing = psub.add_parser("list", help="the entries, of one scope or all")
    _scope_options(listing, required=False)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=run_list)
    remove = psub.add_parser("remove", help="remove entries by id (as list shows them)")
    remove.add_argument("ids", type=int, nargs="+", metavar="ID")
    remove.set_defaults(func=run_remove)
    sens = psub.add_parser("sensitivity", help="show, or turn on/off, skipping mail marked "
                           "Sensitivity: Private or Confidential (on by default)")
    sens.add_argument("state", nargs="?", choices=("on", "off"))
    sens.set_defaults(func=run_sensitivity)


def _scope(args: argparse.Namespace) -> str | None:
    if getattr(args, "organisation", False):
        return privacy.ORGANISATION
    if args.user:
        return f"user:{args.user}"
    if args.queue:
        return f"queue:{args.queue}"
    return None


def _row(e: privacy.Exclusion) -> str:
    note = f"  ({e.note})" if e.note else ""
    return f"{e.id:>5}  {e.scope:<24} {e.kind:<8} {e.value}{note}"


_LATER = "route applies changes at its next reference refresh (MAILROOM_ROUTE_REFERENCE_REFRESH_S)"


def run_exclude(settings: Settings, args: argparse.Namespace) -> int:
    if not (args.address or args.domain):
        raise ConfigError("give --address or --domain (repeatable)")
    scope = _scope(args)
    assert scope is not None
    with connect(settings) as conn:
        added = privacy.exclude(conn, scope, "address", args.address, args.note)
        added += privacy.exclude(conn, scope, "domain", args.domain, args.note)
        conn.commit()
    for entry in added:
        print(_row(entry))
    print(f"{len(added)} entr{'y' if len(added) == 1 else 'ies'} on the list; {_LATER}")
    return 0


def run_list(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        found = privacy.entries(conn, _scope(args))
        sensitivity = privacy.honour_sensitivity(conn)
    if args.json:
        print(json.dumps({"honour_sensitivity": sensitivity, "exclusions": [
            {"id": e.id, "scope": e.scope, "kind": e.kind, "value": e.value, "note": e.note}
            for e in found]}, indent=2))
        return 0
    for entry in found:
        print(_row(entry))
    print(f"{len(found)} entries; Sensitivity: Private/Confidential "
          f"{'honoured' if sensitivity else 'NOT honoured'}")
    return 0


def run_remove(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        removed = privacy.remove(conn, args.ids)
        conn.commit()
    missing = sorted(set(args.ids) - {e.id for e in removed})
    for entry in removed:
        print("removed " + _row(entry).strip())
    if missing:
        raise ConfigError(f"no such entries: {', '.join(map(str, missing))}")
    return 0


def run_sensitivity(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        on = privacy.honour_sensitivity(conn, None if args.state is None else args.state == "on")
        conn.commit()
    print(f"mail marked Sensitivity: Private/Confidential is {'skipped' if on else 'tracked'}"
          + (f"; {_LATER}" if args.state else ""))
    return 0
