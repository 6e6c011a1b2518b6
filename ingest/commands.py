"""``mailroom profile add|list`` and ``mailroom mailbox add|list|show|test|enable|disable|
auth-results|set-password|rotate-key`` (``mailbox import``: :mod:`ingest.bulk`; ``approve|reject``:
:mod:`mailroom.console.ops.approval`).

Passwords never go on the command line (it is visible to every user in ``ps``): they come from
an environment variable named with ``--password-env``, from standard input, or from a prompt
that does not echo when standard input is a terminal.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime

from ingest import announce, bulk, credentials, probe, rekey, store
from ingest.model import (
    DEFAULT_KEYWORD,
    DEFAULT_PORTS,
    AfterIngest,
    Auth,
    Mailbox,
    OwnerKind,
    Profile,
    Protocol,
    Tls,
    parse_folders,
)
from mailroom.db import connect
from mailroom.errors import ConfigError
from mailroom.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    prof = sub.add_parser("profile", help="email server profiles").add_subparsers(
        dest="action", required=True)
    p = prof.add_parser("add", help="add an email server profile")
    p.add_argument("name")
    p.add_argument("--protocol", choices=[x.value for x in Protocol], default="imap")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, help="default: the protocol's port for the TLS mode")
    p.add_argument("--tls", choices=[x.value for x in Tls], default="implicit")
    p.add_argument("--trust-cafile", default="",
                   help="certificate (or CA) trusted explicitly, e.g. a self-signed one")
    p.add_argument("--auth", choices=[x.value for x in Auth], default="password")
    p.add_argument("--oauth-token-url", default="")
    p.add_argument("--oauth-client-id", default="")
    p.add_argument("--oauth-scope", default="")
    p.add_argument("--max-connections", type=int, default=4)
    p.add_argument("--poll-interval", type=int, default=60, help="seconds")
    p.add_argument("--received-after", type=datetime.fromisoformat,
                   help="ISO date-time: only mail received after it is processed")
    p.set_defaults(func=profile_add)
    prof.add_parser("list", help="list profiles").set_defaults(func=profile_list)

    mb = sub.add_parser("mailbox", help="monitored mailboxes").add_subparsers(
        dest="action", required=True)
    a = mb.add_parser("add", help="add a mailbox")
    a.add_argument("address")
    a.add_argument("--profile", help="email server profile (required unless --via: then the "
                   "forward mailbox's)")
    a.add_argument("--owner", choices=[x.value for x in OwnerKind], default="user")
    a.add_argument("--owner-id", default="")
    a.add_argument("--username", help="login name (default: the address)")
    a.add_argument("--password-env", help="environment variable holding the password "
                   "(or OAuth2 client secret); default: read it from standard input; with --via "
                   "none is needed")
    a.add_argument("--via", help="address of the forward mailbox this one's mail arrives "
                   "through; such a mailbox is never logged in to and needs no credentials")
    a.add_argument("--folder", action="append", metavar="NAME[:outgoing]",
                   help="folder to monitor (repeatable; default INBOX); ':outgoing' marks sent "
                   "mail")
    a.add_argument("--after", choices=[x.value for x in AfterIngest], default="flag",
                   help="what to do on the server once the message is safely in Kafka")
    a.add_argument("--keyword", default=DEFAULT_KEYWORD)
    a.add_argument("--move-to", default="")
    a.add_argument("--disabled", action="store_true", help="add it disabled")
    a.add_argument("--pending", action="store_true",
                   help="leave its address pending approval (its mail waits until `mailroom "
                   "mailbox approve`); by default the administrator adding it approves it")
    a.add_argument("--by", default="", help="who adds (and approves) it, for the record "
                   "(default: the operating-system user running this command)")
    a.add_argument("--process-from", type=instant, metavar="DATETIME",
                   help="process only mail that arrived at or after this ISO date-time "
                   "(to the second; UTC unless it names a zone); default: the profile's "
                   "--received-after")
    a.add_argument("--no-auth-results", action="store_true",
                   help="forward mailbox only: its receiving server cannot stamp "
                   "Authentication-Results, so believe forwarders on their From address alone "
                   "(anyone who knows a forwarder's address can then put mail in as theirs)")
    a.set_defaults(func=mailbox_add)
    ar = mb.add_parser("auth-results", help="switch a forward mailbox's Authentication-Results "
                       "check on (the default) or off")
    ar.add_argument("mailbox", help="address or id of a forward mailbox")
    ar.add_argument("state", choices=("on", "off"))
    ar.set_defaults(func=mailbox_auth_results)
    mb.add_parser("list", help="list mailboxes and their status").set_defaults(func=mailbox_list)
    for name, func, text in (
        ("show", mailbox_show, "everything about one mailbox (never its credentials)"),
        ("test", mailbox_test, "log in, list folders and counts, record the result"),
        ("enable", mailbox_enable, "enable (also after a permanent failure was fixed)"),
        ("disable", mailbox_disable, "stop polling it"),
    ):
        s = mb.add_parser(name, help=text)
        s.add_argument("mailbox", help="address or id")
        s.set_defaults(func=func)
    pub = mb.add_parser("publish", help="publish every mailbox (or the given ones) to the "
                        "mailboxes topic again: a resync of the topic from the database")
    pub.add_argument("mailbox", nargs="*", help="addresses or ids (default: all)")
    pub.set_defaults(func=mailbox_publish)
    pf = mb.add_parser("process-from", help="set a mailbox's 'process email from' (to the "
                       "second): earlier mail is skipped, each skip traced with its reason")
    pf.add_argument("mailbox", help="address or id")
    pf.add_argument("when", metavar="DATETIME|none", help="ISO date-time (UTC unless it names a "
                    "zone), or 'none' for the profile's --received-after")
    pf.set_defaults(func=mailbox_process_from)
    pw = mb.add_parser("set-password", help="store a new password (or OAuth2 client secret) for "
                       "a mailbox; read from --password-env, standard input or a prompt")
    pw.add_argument("mailbox", help="address or id")
    pw.add_argument("--password-env", help="environment variable holding the new password")
    pw.set_defaults(func=mailbox_set_password)
    bulk.register(mb)
    mb.add_parser("rotate-key", help="re-encrypt every stored credential under "
                  "MAILROOM_SECRET_KEY (old keys in MAILROOM_SECRET_KEY_PREVIOUS still decrypt)"
                  ).set_defaults(func=mailbox_rotate_key)


def profile_add(settings: Settings, args: argparse.Namespace) -> int:
    protocol, tls = Protocol(args.protocol), Tls(args.tls)
    p = Profile(
        name=args.name, protocol=protocol, host=args.host,
        port=args.port or DEFAULT_PORTS[(protocol, tls)], tls=tls, trust_cafile=args.trust_cafile,
        auth=Auth(args.auth), oauth_token_url=args.oauth_token_url,
        oauth_client_id=args.oauth_client_id, oauth_scope=args.oauth_scope,
        max_connections=args.max_connections, poll_interval_s=args.poll_interval,
        received_after=args.received_after,
    )
    with connect(settings) as conn:
        pid = store.add_profile(conn, p)
    print(f"profile {p.name} added (id {pid})")
    return 0


def profile_list(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        for p in store.profiles(conn):
            print(f"{p.id}\t{p.name}\t{p.protocol}\t{p.host}:{p.port}\ttls={p.tls}\t"
                  f"auth={p.auth}\tpoll={p.poll_interval_s}s")
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise ConfigError(f"environment variable {args.password_env} is not set")
        return value
    if sys.stdin.isatty():  # typed at a prompt, not echoed; never an argument (ps shows those)
        value = getpass.getpass("password: ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ConfigError("no password given (use --password-env, standard input or the prompt)")
    return value


def mailbox_add(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        forward = store.mailbox(conn, args.via) if args.via else None
        if args.profile:
            profile_id = store.profile(conn, args.profile).id
        elif forward is not None:
            profile_id = forward.profile_id  # never used to log in; the column wants one
        else:
            raise ConfigError("--profile is required (unless the mailbox arrives --via a "
                              "forward mailbox)")
        assert profile_id is not None
        # Via a forward mailbox: never logged in to, so no credentials unless given explicitly.
        secret = b"" if forward is not None and not args.password_env else \
            credentials.encrypt(settings, _password(args))
        m = Mailbox(
            address=args.address, owner_kind=OwnerKind(args.owner), owner_id=args.owner_id,
            profile_id=profile_id, username=args.username or args.address,
            secret=secret, via_mailbox_id=forward.id if forward else None,
            folders=parse_folders(args.folder), after_ingest=AfterIngest(args.after),
            keyword=args.keyword, move_to=args.move_to, enabled=not args.disabled,
            check_auth_results=not args.no_auth_results,
            # The administrator adding a mailbox vouches for its address, unless told not to.
            approved=not args.pending, approval_by="" if args.pending else deciding(args),
            approval_at=None if args.pending else datetime.now(UTC),
            process_from=args.process_from,
        )
        mid = store.add_mailbox(conn, m)
    print(f"mailbox {m.address} added (id {mid})"
          + (" pending approval: `mailroom mailbox approve` releases its mail"
             if args.pending else f", approved by {m.approval_by}"))
    _warn_trust(settings, m)
    return _publish(settings, [mid])


def _warn_trust(settings: Settings, m: Mailbox) -> None:
    gap = m.trust_gap(settings.unwrap_authserv_id)
    if gap:
        print(f"mailroom: warning: ingest will not poll it: {gap}", file=sys.stderr)
    elif m.owner_kind is OwnerKind.FORWARD and not m.check_auth_results:
        print(f"mailroom: warning: forwards to {m.address} are believed on the forwarder's "
              "address alone — a forward's From, a redirect's claim (Authentication-Results "
              "check off)", file=sys.stderr)


def mailbox_auth_results(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        m = store.mailbox(conn, args.mailbox)
        if m.owner_kind is not OwnerKind.FORWARD:
            raise ConfigError(f"{m.address} is a {m.owner_kind} mailbox: only a forward mailbox "
                              "has an Authentication-Results check")
        assert m.id is not None
        store.set_check_auth_results(conn, m.id, args.state == "on")
    print(f"mailbox {m.address}: Authentication-Results check {args.state}")
    with connect(settings) as conn:
        _warn_trust(settings, store.mailbox(conn, m.id))
    return _publish(settings, [m.id])


def mailbox_list(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        for m in store.mailboxes(conn):
            state = "enabled" if m.enabled else "disabled"
            if not m.approved:
                state += f" ({m.approval})"
            print(f"{m.id}\t{m.address}\t{m.owner_kind}\t{state}\t{m.status}\t{m.status_detail}")
    return 0


def mailbox_show(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        m = store.mailbox(conn, args.mailbox)
        p = store.profile(conn, m.profile_id)
        cps = conn.execute(
            "SELECT folder, uidvalidity, last_uid, backlog, updated_at FROM ingest_checkpoints "
            "WHERE mailbox_id = %s ORDER BY folder", (m.id,)).fetchall()
        via = store.forward_address(conn, m)
    print(f"mailbox {m.address} (id {m.id})\n  owner: {m.owner_kind} {m.owner_id}")
    print(f"  profile: {p.name} ({p.protocol} {p.host}:{p.port} tls={p.tls} auth={p.auth})")
    print(f"  username: {m.username}\n  credentials: "
          f"{'(encrypted, never shown)' if m.secret else '(none)'}")
    incoming = f"via forward mailbox {via} (never polled itself)" if via else "direct"
    print(f"  incoming: {incoming}")
    print("  folders: " + ", ".join(f"{f.name} ({f.direction})" for f in m.folders))
    target = f" -> {m.move_to}" if m.move_to else ""
    if m.after_ingest is AfterIngest.FLAG:
        target = f" {m.keyword}"
    print(f"  after ingest: {m.after_ingest}{target}")
    decided = (f" by {m.approval_by or '(not recorded)'} at {m.approval_at:%Y-%m-%d %H:%M:%S%z}"
               if m.approval_at else "")
    print(f"  enabled: {m.enabled}  approval: {m.approval}{decided}")
    if frm := m.processes_from(p):
        print(f"  process email from: {frm.astimezone(UTC).isoformat()}"
              + ("" if m.process_from else " (the profile's received-after)"))
    if gap := m.approval_gap():
        print(f"  waiting: {gap}")
    if m.owner_kind is OwnerKind.FORWARD:
        check = "on" if m.check_auth_results else "off (forwarders believed on From alone)"
        print(f"  Authentication-Results check: {check}")
    print(f"  status: {m.status} {m.status_detail}")
    if m.last_test_at:
        print(f"  last test: {'Success' if m.last_test_ok else 'Failure'} at "
              f"{m.last_test_at:%Y-%m-%d %H:%M:%S%z}: {m.last_test_detail}")
    for folder, uidvalidity, last_uid, backlog, at in cps:
        print(f"  checkpoint {folder}: uidvalidity={uidvalidity} last_uid={last_uid} "
              f"backlog={backlog} at {at:%Y-%m-%d %H:%M:%S%z}")
    return 0


def mailbox_test(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        m = store.mailbox(conn, args.mailbox)
        p = store.profile(conn, m.profile_id)
        result = probe.test(settings, p, m, store.forward_address(conn, m))
        assert m.id is not None
        store.record_test(conn, m.id, result.ok, result.detail)
    print(f"{'Success' if result.ok else 'Failure'}: {result.detail}")
    return 0 if result.ok else 1


def _set_enabled(settings: Settings, key: str, enabled: bool) -> int:
    with connect(settings) as conn:
        m = store.mailbox(conn, key)
        assert m.id is not None
        store.set_enabled(conn, m.id, enabled)
    print(f"mailbox {m.address} {'enabled' if enabled else 'disabled'}")
    return _publish(settings, [m.id])


def mailbox_enable(settings: Settings, args: argparse.Namespace) -> int:
    return _set_enabled(settings, args.mailbox, True)


def mailbox_disable(settings: Settings, args: argparse.Namespace) -> int:
    return _set_enabled(settings, args.mailbox, False)


def _publish(settings: Settings, ids: list[int] | None) -> int:
    """Publish committed changes to the mailboxes topic; a failure is reported, not hidden
    (the database has the change; ``mailroom mailbox publish`` repairs the topic)."""
    try:
        with connect(settings) as conn:
            n = announce.publish_now(settings, conn, ids)
    except Exception as exc:  # noqa: BLE001 - any broker failure: say so and how to repair
        print(f"mailroom: not published to {settings.topic('mailboxes')}: "
              f"{type(exc).__name__}: {exc}; run `mailroom mailbox publish` once Kafka is back",
              file=sys.stderr)
        return 1
    if ids is None:
        print(f"{n} mailbox(es) published to {settings.topic('mailboxes')}")
    return 0


def instant(text: str) -> datetime:
    """An ISO date-time as an aware instant; one without a zone is UTC (said in the help)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def mailbox_process_from(settings: Settings, args: argparse.Namespace) -> int:
    when = None if args.when.strip().lower() == "none" else instant(args.when)
    with connect(settings) as conn:
        m = store.mailbox(conn, args.mailbox)
        assert m.id is not None
        store.set_process_from(conn, m.id, when)
    shown = when.astimezone(UTC).isoformat() if when else "the profile's received-after"
    print(f"mailbox {m.address}: processes mail that arrived from {shown}")
    return _publish(settings, [m.id])


def deciding(args: argparse.Namespace) -> str:
    """Who the record names for an approval decision made on the command line."""
    return args.by.strip() or f"{getpass.getuser()} (command line)"


def mailbox_set_password(settings: Settings, args: argparse.Namespace) -> int:
    clear = _password(args)
    with connect(settings) as conn:
        m = rekey.set_password(settings, conn, args.mailbox, clear)
    print(f"mailbox {m.address}: new password stored (used from the next pass)")
    if not m.enabled:
        print(f"  it is disabled ({m.status_detail or m.status}): `mailroom mailbox enable "
              f"{m.address}` once the password is right (`mailroom mailbox test` checks it)")
    return 0


def mailbox_rotate_key(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        result = rekey.rotate_all(settings, conn)
    print(f"{len(result.rotated)} mailbox credential(s) re-encrypted under MAILROOM_SECRET_KEY")
    if result.undecryptable:
        print("not decryptable with any configured key (add the key they were stored with to "
              "MAILROOM_SECRET_KEY_PREVIOUS and run this again, or `mailroom mailbox "
              "set-password`): " + ", ".join(result.undecryptable), file=sys.stderr)
        return 1
    return 0


def mailbox_publish(settings: Settings, args: argparse.Namespace) -> int:
    ids: list[int] | None = None
    if args.mailbox:
        with connect(settings) as conn:
            ids = [int(store.mailbox(conn, key).id or 0) for key in args.mailbox]
    return _publish(settings, ids)
