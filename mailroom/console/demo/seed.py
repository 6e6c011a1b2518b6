"""The demo's I/O: reset its own state, seed the company, append mail to Dovecot.

Everything the demo owns is derived from the settings it runs with, so a test running it in its
own topic prefix and schema touches nothing else:

* the database schema the connection uses (``public`` for the local stack's demo; a test's
  own through ``MAILROOM_DATABASE_URL`` ``options=-c search_path=...``) — dropped, recreated
  and migrated, as a fresh ``mailroom db migrate`` leaves it;
* the topics ``<prefix>.*`` and consumer groups ``<prefix>.*`` — deleted and created again;
* the Dovecot users ``<prefix>-<name>`` — their Maildirs emptied.

Seeding goes through the product's own commands (``mailroom import``, ``profile add``,
``mailbox add``, ``rules load``, ``token new``), parsed by the real CLI parser and called with
the demo's settings, so the demo exercises what an administrator types.
"""

from __future__ import annotations

import contextlib
import imaplib
import io
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from kafka.errors import KafkaError
from psycopg import sql

from mailroom import kafka, topics
from mailroom.console.demo import mail
from mailroom.console.demo.scenario import (
    AUTHSERV_ID,
    DOMAIN,
    IMPORTS,
    LETTERS,
    MAILBOXES,
    PASSWORD,
    RULES_TOML,
    TOKEN,
    TOKEN_REGARDING,
    Letter,
    letters_by_key,
)
from mailroom.console.stack import dovecot
from mailroom.db import connect
from mailroom.db.migrate import migrate
from mailroom.errors import ConfigError, TransientError
from mailroom.settings import Settings

log = logging.getLogger(__name__)

PASSWORD_ENV = "MAILROOM_DEMO_MAILBOX_PASSWORD"


def secure(settings: Settings) -> Settings:
    """The demo runs the secure setup: forwards are believed only on the Authentication-Results
    of Acme's receiving server, whose authserv-id is the demo's unless one is configured (the
    demo's mail is then stamped with that one)."""
    if settings.unwrap_authserv_id:
        return settings
    return settings.replace(unwrap_authserv_id=AUTHSERV_ID)


def login_name(settings: Settings, local: str) -> str:
    """The Dovecot login of a demo mailbox: namespaced by the topic prefix, so a test's demo
    and the local stack's demo never share a Maildir."""
    slug = re.sub(r"[^a-z0-9]+", "-", settings.topic_prefix.lower()).strip("-")
    return f"{slug}-{local}"


# --- reset -------------------------------------------------------------------------------------
def reset_database(settings: Settings) -> str:
    """Drop and recreate the connection's schema, then migrate it; returns its name."""
    with connect(settings, autocommit=True) as conn:
        schema = _target_schema(conn)
        # A stage or dashboard still connected would hold locks: fail clearly, never hang.
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    with connect(settings, autocommit=True) as conn:
        migrate(conn)
    return schema


def _target_schema(conn: psycopg.Connection) -> str:
    """The schema the demo's tables go to: the first in search_path (it may not exist yet)."""
    row = conn.execute("SELECT current_schema()").fetchone()
    if row is not None and row[0] is not None:
        return str(row[0])
    path = str(conn.execute("SHOW search_path").fetchone()[0])
    first = path.split(",")[0].strip().strip('"')
    if not first or first == "$user":
        raise ConfigError(f"cannot tell which schema to reset from search_path {path!r}")
    return first


def reset_topics(settings: Settings, timeout_s: float = 60.0) -> None:
    """Delete the prefix's topics and consumer groups, then create the topics again."""
    admin = kafka.make_admin(settings, client_id="mailroom-demo")
    try:
        groups = [str(g["group_id"]) for g in admin.list_groups()]
        ours = [g for g in groups if g.startswith(f"{settings.topic_prefix}.")]
        if ours:
            with contextlib.suppress(KafkaError):
                admin.delete_groups(ours)
        specs = topics.topic_specs(settings)
        existing = set(admin.list_topics()) & {s.name for s in specs}
        if existing:
            admin.delete_topics(sorted(existing))
        deadline = time.monotonic() + timeout_s
        while existing & set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise TransientError(f"Kafka did not delete {sorted(existing)} in {timeout_s} s")
            time.sleep(0.2)
        # Deletion is asynchronous on the brokers even after the metadata says "gone".
        while True:
            try:
                topics.ensure_topics(admin, specs)
                break
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        admin.close()


def reset_mail_users(settings: Settings) -> None:
    for box in MAILBOXES:
        name = login_name(settings, box.local)
        shutil.rmtree(dovecot.mail_root(settings) / name, ignore_errors=True)
        dovecot.add_user(settings, name, PASSWORD)


def reset(settings: Settings) -> str:
    schema = reset_database(settings)
    reset_topics(settings)
    reset_mail_users(settings)
    return schema


# --- seeding through the product's commands ----------------------------------------------------
def command_output(settings: Settings, argv: list[str]) -> tuple[int, str]:
    """Run one ``mailroom`` sub-command in this process with ``settings``; returns its exit
    code and output."""
    from mailroom.cli import build_parser

    args = build_parser().parse_args(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = int(args.func(settings, args) or 0)
    return code, out.getvalue()


def command(settings: Settings, argv: list[str]) -> str:
    """:func:`command_output` of a command that must succeed; returns its output."""
    code, out = command_output(settings, argv)
    if code != 0:
        raise ConfigError(f"mailroom {' '.join(argv)} failed ({code}): {out}")
    return out


def seed_company(settings: Settings, say: Callable[[str], None] = print) -> str:
    """Reference records, rules, profiles, mailboxes and the tracking token; returns the token."""
    os.environ[PASSWORD_ENV] = PASSWORD  # `mailbox add --password-env` reads it
    with tempfile.TemporaryDirectory(prefix="mailroom-demo-") as tmp:
        for kind, text in IMPORTS:
            path = Path(tmp) / f"{kind}.csv"
            path.write_text(text)
            command(settings, ["import", kind, str(path)])
        rules = Path(tmp) / "rules.toml"
        rules.write_text(RULES_TOML)
        command(settings, ["rules", "load", str(rules)])
    say(f"  imported {', '.join(k for k, _ in IMPORTS)}; loaded the rules")
    for protocol, port in (("imap", settings.imap_port), ("pop3", settings.pop3_port)):
        # Plain text on loopback only (the profile refuses it for any other host); polled
        # every second so the demo moves at the speed of a presentation.
        command(settings, ["profile", "add", f"demo-{protocol}", "--protocol", protocol,
                           "--host", "127.0.0.1", "--port", str(port), "--tls", "none",
                           "--poll-interval", "1"])
    for box in sorted(MAILBOXES, key=lambda b: b.via_forward):  # the forward mailbox first
        argv = ["mailbox", "add", box.address, "--profile", f"demo-{box.protocol}",
                "--owner", box.owner, "--username", login_name(settings, box.local),
                "--password-env", PASSWORD_ENV]
        if box.owner_id:
            argv += ["--owner-id", box.owner_id]
        if box.via_forward:
            argv += ["--via", f"crm-forward@{DOMAIN}"]
        for folder in box.folders:
            argv += ["--folder", folder]
        command(settings, argv)
    say(f"  {len(MAILBOXES)} mailboxes: crm-forward@ (alice, bob, carol and the sales queue "
        "forward to it), dave@ and support@ over IMAP, erin@ over POP3")
    token = command(settings, ["token", "new", "--regarding", TOKEN_REGARDING]).strip()
    say(f"  tracking token {token} regarding {TOKEN_REGARDING}")
    return token


# --- mail ----------------------------------------------------------------------------------------
def deliveries(letter: Letter) -> list[tuple[str, str]]:
    if letter.forwarded_by:
        return [("crm-forward", "INBOX")]
    return list(letter.deliver_to)


def append(settings: Settings, local: str, folder: str, data: bytes) -> None:
    """APPEND over IMAP as the mailbox's own user, as a mail server's delivery would."""
    with imaplib.IMAP4("127.0.0.1", settings.imap_port) as imap:
        imap.login(login_name(settings, local), PASSWORD)
        typ, detail = imap.append(folder, "", imaplib.Time2Internaldate(time.time()), data)
        if typ != "OK":
            raise TransientError(f"APPEND to {local}/{folder} refused: {detail!r}")
        imap.logout()


def render(letter: Letter, token: str, authserv_id: str = AUTHSERV_ID) -> bytes:
    from dataclasses import replace

    filled = replace(letter, subject=letter.subject.replace(TOKEN, token))
    return mail.render(filled.resolved(letters_by_key()), authserv_id)


def append_phase(settings: Settings, phase: int, token: str) -> int:
    """Append every letter of ``phase`` to its mailboxes; returns the copies appended."""
    n = 0
    for letter in LETTERS:
        if letter.phase != phase:
            continue
        data = render(letter, token, settings.unwrap_authserv_id or AUTHSERV_ID)
        for local, folder in deliveries(letter):
            append(settings, local, folder, data)
            n += 1
    return n


def append_extra(settings: Settings, n: int) -> bytes:
    """A new message from a known contact to the support queue (the "keep running" part)."""
    from mailroom.console.demo.scenario import JANE, SUPPORT, Letter, _at

    letter = Letter(f"extra-{n}-{int(time.time())}", JANE, (SUPPORT,),
                    f"Follow-up #{n}", _at(300 + n), "One more thing.\nJane")
    data = mail.original(letter)
    append(settings, "support", "INBOX", data)
    return data
