"""``mailroom rules deploy | remove | status --forward-mailbox ADDRESS``: the forwarding rules.

Added to the ``rules`` command that route registers (rules load | preview | show): the words
belong together for the admin, but deploying rules talks to mail servers and reads ingest's
mailboxes, which a stage's command module must not import.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC

from mailroom.console.ops import exchange_rules, managesieve, rule_deploy, rule_status
from mailroom.db import connect
from mailroom.errors import ConfigError
from mailroom.settings import Settings


def _rules_actions(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-commands of the existing ``rules`` command (registered before this module)."""
    rules = sub.choices.get("rules")
    found = [a for a in (rules._actions if rules else [])  # noqa: SLF001 - argparse's own list
             if isinstance(a, argparse._SubParsersAction)]
    if not found:
        raise RuntimeError("the 'rules' command must be registered before the rule deployment")
    return found[0]


def _common(p: argparse.ArgumentParser, server: bool = True) -> None:
    p.add_argument("--forward-mailbox", required=True, metavar="ADDRESS",
                   help="the forward mailbox whose users' rules these are")
    p.add_argument("--users", action="append", default=[], metavar="ADDRESS[,ADDRESS…]",
                   help="only these users (their mailbox addresses); default: every mailbox "
                   "whose mail arrives via the forward mailbox")
    if not server:
        return
    p.add_argument("--server", metavar="HOST[:PORT]",
                   help="the users' ManageSieve server; default: the host of each mailbox's "
                   f"email server profile, port {managesieve.DEFAULT_PORT}")
    p.add_argument("--no-tls", action="store_true",
                   help="no STARTTLS (only for a server on this machine)")
    p.add_argument("--cafile", default="", help="trust this CA file for the server's certificate "
                   "(default: the profile's)")
    p.add_argument("--admin", metavar="USER",
                   help="log in as this master user on each user's behalf (password from "
                   "--admin-password-env or standard input); default: each user's stored "
                   "credentials")
    p.add_argument("--admin-password-env", metavar="VAR",
                   help="environment variable holding the admin's password")


def register(sub: argparse._SubParsersAction) -> None:
    actions = _rules_actions(sub)
    deploy = actions.add_parser(
        "deploy", help="give each user of a forward mailbox the rule that forwards their mail "
        "to it (Sieve over ManageSieve; or --emit the Exchange Online commands)")
    _common(deploy)
    deploy.add_argument("--dry-run", action="store_true",
                        help="say what would change, have the server check the script, "
                        "change nothing")
    deploy.add_argument("--emit", choices=("powershell", "graph"),
                        help="print what an Exchange Online admin runs instead of deploying: "
                        "New-InboxRule commands, or Microsoft Graph messageRule batches")
    deploy.set_defaults(func=deploy_rules)
    remove = actions.add_parser("remove", help="remove the forwarding rules (a user's own "
                                "script that the rule kept running becomes active again)")
    _common(remove)
    remove.add_argument("--dry-run", action="store_true", help="say what would be removed")
    remove.set_defaults(func=remove_rules)
    status = actions.add_parser(
        "status", help="per user: the rule on the server, and when mail last arrived through it")
    _common(status)
    status.add_argument("--no-server", action="store_true",
                        help="only what the records say (no ManageSieve login)")
    status.set_defaults(func=rules_status)


def _users(args: argparse.Namespace) -> list[str]:
    return [u for item in args.users for u in item.split(",") if u.strip()]


def _server(args: argparse.Namespace) -> rule_deploy.Server | None:
    if not args.server:
        if args.no_tls or args.cafile:
            raise ConfigError("--no-tls and --cafile need --server")
        return None
    host, _, port = args.server.rpartition(":") if ":" in args.server else (args.server, "", "")
    try:
        number = int(port) if port else managesieve.DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"--server {args.server!r}: the port is not a number") from None
    return rule_deploy.Server(host, number, starttls=not args.no_tls, cafile=args.cafile)


def _admin(args: argparse.Namespace) -> rule_deploy.Admin | None:
    if not args.admin:
        return None
    if args.admin_password_env:
        value = os.environ.get(args.admin_password_env)
        if value is None:
            raise ConfigError(f"environment variable {args.admin_password_env} is not set")
    elif sys.stdin.isatty():  # typed at a prompt, never an argument (ps shows those)
        value = getpass.getpass(f"password of {args.admin}: ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ConfigError("the admin's password is empty")
    return rule_deploy.Admin(args.admin, value)


def _finish(outcomes: list[rule_deploy.Outcome]) -> int:
    for o in outcomes:
        print(o.line())
    failed = sum(not o.ok for o in outcomes)
    print(f"{len(outcomes)} user(s), {failed} failed")
    return 1 if failed else 0


def deploy_rules(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        forward = rule_deploy.forward_mailbox(conn, args.forward_mailbox)
        users = rule_deploy.forwarders(conn, forward, _users(args))
        if args.emit:
            addresses = [m.address for m in users]
            print(exchange_rules.powershell(addresses, forward.address) if args.emit ==
                  "powershell" else exchange_rules.graph_batches(addresses, forward.address),
                  end="")
            return 0
        if not users:
            print(f"no mailbox arrives via {forward.address}: nothing to deploy")
            return 0
        deployer = rule_deploy.Deployer(settings, conn, server=_server(args), admin=_admin(args))
        return _finish([deployer.deploy(m, forward.address, dry_run=args.dry_run)
                        for m in users])


def remove_rules(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        forward = rule_deploy.forward_mailbox(conn, args.forward_mailbox)
        users = rule_deploy.forwarders(conn, forward, _users(args))
        deployer = rule_deploy.Deployer(settings, conn, server=_server(args), admin=_admin(args))
        return _finish([deployer.remove(m, dry_run=args.dry_run) for m in users])


def rules_status(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 1 when any user's rule is not deployed as it should be, or looks broken."""
    with connect(settings) as conn:
        forward = rule_deploy.forward_mailbox(conn, args.forward_mailbox)
        users = rule_deploy.forwarders(conn, forward, _users(args))
        arrivals = rule_status.last_arrivals(conn, forward)
        # Compared with everyone behind the forward mailbox, not only the users asked about.
        silent = {s.address for s in rule_status.silent(
            rule_deploy.forwarders(conn, forward), arrivals)}
        deployer = None if args.no_server else rule_deploy.Deployer(
            settings, conn, server=_server(args), admin=_admin(args))
        print(f"{'USER':<40} {'RULE':<14} LAST ARRIVAL")
        bad = 0
        for m in users:
            rule = deployer.inspect(m, forward.address) if deployer else None
            last = rule_status.last_arrival(arrivals, m)
            when = f"{last.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if last else "never"
            notes = [rule.detail] if rule and rule.detail and rule.action != "deployed" else []
            if m.address in silent:
                notes.append("mail stopped while the others' continues: check the rule")
            if m.address in silent or (rule is not None and rule.action != "deployed"):
                bad += 1
            note = f"  ({'; '.join(notes)})" if notes else ""
            print(f"{m.address:<40} {rule.action if rule else '-':<14} {when}{note}")
        return 1 if bad else 0
