"""``mailroom web [--host H] [--port N] [--tls-cert F --tls-key F]``: serve the dashboard until
Ctrl-C or SIGTERM; ``mailroom web user add|list|disable|enable|password``: its accounts.

When ready it prints ``dashboard: URL`` on stdout (flushed), which is the line ``mailroom
demo`` waits for. It prints no secret: people log in with their own accounts. Passwords are
read from standard input, a prompt or an environment variable (``--password-env``), never from
the command line (``ps`` shows arguments to everyone on the machine).
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from mailroom.db import connect
from mailroom.errors import ConfigError
from mailroom.settings import Settings

DEFAULT_PORT = 18080
LOCAL = {"127.0.0.1", "localhost", "::1"}


def register(sub: Any) -> None:
    p = sub.add_parser("web", help="dashboard: mailboxes, lag, dead letters, recent records; "
                       "its accounts (web user ...)", description=__doc__)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    p.add_argument("--forwarded-allow-ips", default="127.0.0.1,::1", metavar="ADDRS",
                   help="comma-separated addresses of the TLS proxies whose X-Forwarded-For "
                   "and -Proto are believed (default 127.0.0.1,::1: a proxy on this machine)")
    p.set_defaults(func=run)
    web = p.add_subparsers(dest="web_command", metavar="{user}")
    user = web.add_parser("user", help="dashboard accounts").add_subparsers(
        dest="user_command", required=True, metavar="{add,list,disable,enable,password}")
    # No abbreviations: "--password SECRET" must not be taken for --password-env.
    add = user.add_parser("add", help="a new account; its password from standard input, the "
                          "prompt or --password-env", allow_abbrev=False)
    add.add_argument("name")
    add.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer",
                     help="viewer reads; operator also tests mailboxes and retries dead "
                     "letters; admin also reads the audit log (default viewer)")
    add.add_argument("--password-env", metavar="VAR",
                     help="read the password from this environment variable")
    add.set_defaults(func=user_add)
    user.add_parser("list", help="accounts, roles, enabled, live sessions").set_defaults(
        func=user_list)
    for name, func, text in (("disable", user_disable, "refuse its logins and end its "
                              "sessions"), ("enable", user_enable, "allow its logins again")):
        q = user.add_parser(name, help=text)
        q.add_argument("name")
        q.set_defaults(func=func)
    pw = user.add_parser("password", help="a new password (ends every session of the account)",
                         allow_abbrev=False)
    pw.add_argument("name")
    pw.add_argument("--password-env", metavar="VAR",
                    help="read the password from this environment variable")
    pw.set_defaults(func=user_password)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.console.web.app import Dashboard
    from mailroom.console.web.server import DashboardServer

    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    app = Dashboard(settings)
    try:
        server = DashboardServer(app, args.host, args.port, tls_cert=args.tls_cert,
                                 tls_key=args.tls_key, proxies=args.forwarded_allow_ips)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    if args.host not in LOCAL and not args.tls_cert:
        print(f"warning: listening on {args.host}: reachable from other machines over plain "
              "HTTP; use --tls-cert/--tls-key or put TLS in front of it", file=sys.stderr)
    _warn_without_accounts(settings)
    app.start_sampling()
    print(f"dashboard: {server.url}", flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.shutdown()

    # uvicorn re-raises the signal it stopped on with the handler it found: ours ends cleanly.
    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    return 0


def _warn_without_accounts(settings: Settings) -> None:
    try:
        with connect(settings, autocommit=True) as conn:
            n = conn.execute("SELECT count(*) FROM web_accounts WHERE enabled").fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - the server still starts; pages say what is wrong
        print(f"warning: cannot count dashboard accounts: {exc}", file=sys.stderr)
        return
    if not n:
        print("warning: no dashboard account can log in yet: `mailroom web user add NAME "
              "--role admin`", file=sys.stderr)


def _password(args: argparse.Namespace, prompt: str = "password: ") -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise ConfigError(f"environment variable {args.password_env} is not set")
        return value
    if sys.stdin.isatty():  # typed at a prompt, not echoed; never an argument
        value = getpass.getpass(prompt)
        if value != getpass.getpass("again: "):
            raise ConfigError("the two passwords differ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ConfigError("no password given (use --password-env, standard input or the prompt)")
    return value


def _actor() -> str:
    """Who ran the command, for the audit log: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid {os.getuid()}"


def user_add(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.console.web import accounts, audit

    name = accounts.check_name(args.name)
    password = _password(args)
    with connect(settings) as conn:
        account = accounts.add(conn, accounts.Passwords(), name, accounts.Role[args.role],
                               password)
        audit.record(conn, _actor(), "account.add", name, {"role": args.role})
        conn.commit()
    print(f"account {account.name} ({account.role.name}) added")
    return 0


def user_list(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.console.web import accounts

    with connect(settings, autocommit=True) as conn:
        found = accounts.all_accounts(conn)
        live = dict(conn.execute("SELECT account_id, count(*) FROM web_sessions "
                                 "WHERE expires_at > now() GROUP BY 1").fetchall())
    for a in found:
        state = "enabled" if a.enabled else "disabled"
        print(f"{a.name}\t{a.role.name}\t{state}\tsessions={live.get(a.id, 0)}\t"
              f"password changed {a.password_changed_at:%Y-%m-%d %H:%M} UTC")
    if not found:
        print("no accounts (mailroom web user add NAME --role admin)")
    return 0


def _set_enabled(settings: Settings, name: str, enabled: bool) -> int:
    from mailroom.console.web import accounts, audit

    with connect(settings) as conn:
        account = accounts.get(conn, name)
        accounts.set_enabled(conn, account, enabled)
        audit.record(conn, _actor(), "account.enable" if enabled else "account.disable", name)
        conn.commit()
    print(f"account {name} {'enabled' if enabled else 'disabled; its sessions ended'}")
    return 0


def user_disable(settings: Settings, args: argparse.Namespace) -> int:
    return _set_enabled(settings, args.name, False)


def user_enable(settings: Settings, args: argparse.Namespace) -> int:
    return _set_enabled(settings, args.name, True)


def user_password(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.console.web import accounts, audit

    password = _password(args, "new password: ")
    with connect(settings) as conn:
        account = accounts.get(conn, args.name)
        accounts.set_password(conn, accounts.Passwords(), account, password)
        audit.record(conn, _actor(), "account.password", args.name)
        conn.commit()
    print(f"account {args.name}: new password stored; its sessions ended")
    return 0
