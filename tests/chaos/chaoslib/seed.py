"""A chaos run's own world on the local stack: schema, topics, reference records, mailboxes and
the forward mailbox's Maildir — and its removal afterwards.

Everything is named after the run (topic prefix ``chaos.<name>``, schema ``<name>``, Dovecot
user ``<name>-forward``), so runs never meet each other, the demo or other tests. Configuration
goes through the product's own commands (``mailroom import``, ``rules load``, ``profile add``,
``mailbox add``) as an administrator types them; only the mail is written straight into the
Maildir, because APPENDing thousands of messages over IMAP would take longer than the run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kafka.errors import KafkaError
from psycopg import sql

from chaoslib import mail
from mailroom import kafka
from mailroom.console.demo.seed import command
from mailroom.console.stack import dovecot
from mailroom.db import connect
from mailroom.db.migrate import migrate
from mailroom.settings import Settings
from mailroom.topics import ensure_topics, topic_specs

#: the authserv-id of "our receiving server": the stages trust Authentication-Results only from it
AUTHSERV_ID = "mx.chaos.acme.example"
PASSWORD_ENV = "MAILROOM_CHAOS_MAILBOX_PASSWORD"


@dataclass(frozen=True)
class World:
    """One run's names and settings (the settings every stage process is started with)."""

    name: str
    settings: Settings
    base: Settings
    login: str  # the forward mailbox's Dovecot user
    password: str
    mails: tuple[mail.MailSpec, ...]

    @property
    def schema(self) -> str:
        return self.name


def world(base: Settings, mails: list[mail.MailSpec], name: str = "") -> World:
    name = name or "chaos" + uuid.uuid4().hex[:8]
    settings = base.replace(
        topic_prefix=f"chaos.{name}",
        # In the DSN, so stage processes given MAILROOM_DATABASE_URL use the schema too.
        database_url=f"{base.dsn} options='-csearch_path={name}'",
        unwrap_authserv_id=AUTHSERV_ID,
        # A killed member's partitions (and ingest's mailboxes) move after the session timeout:
        # the shortest the broker allows, so a run spends its time working, not waiting.
        kafka_session_timeout_ms=6_000,
        kafka_heartbeat_interval_ms=1_000,
    )
    return World(name, settings, base, f"{name}-forward", "pw-" + uuid.uuid4().hex[:12],
                 tuple(mails))


def _csv(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


def reference_csvs() -> list[tuple[str, str]]:
    """(kind, CSV text) in import order: the users, the customer accounts and contacts."""
    users = [f"{uid},{uid[2:].title()} User,{address}" for uid, address in mail.FORWARDERS]
    users.append(f"{mail.DESK[0]},Service Desk,{mail.DESK[1]}")
    accounts = sorted({f"{acc},Customer {acc[2:]},{mail.FORWARDERS[0][0]},"
                       f"info@customer{acc[2:]}.example" for _, acc, _ in mail.CONTACTS})
    contacts = [f"{cid},Buyer,{cid[2:]},{acc},{mail.FORWARDERS[0][0]},{address}"
                for cid, acc, address in mail.CONTACTS]
    return [("users", _csv("id,name,emails", users)),
            ("accounts", _csv("id,name,owner,emails", accounts)),
            ("contacts", _csv("id,first_name,last_name,account,owner,emails", contacts))]


RULES_TOML = """
# Users track mail from known customers (every sender here is a contact).
[track]
default = "known"
"""


def create(w: World) -> None:
    """Schema, topics, reference records, rules, the forward mailbox and its forwarders, and
    every mail in the forward mailbox's INBOX. Stages are not started."""
    s = w.settings
    with connect(w.base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(w.schema)))
    with connect(s) as conn:
        migrate(conn)
    admin = kafka.make_admin(s)
    try:
        ensure_topics(admin, topic_specs(s))
    finally:
        admin.close()
    with tempfile.TemporaryDirectory(prefix="mailroom-chaos-") as tmp:
        for kind, text in reference_csvs():
            path = Path(tmp) / f"{kind}.csv"
            path.write_text(text)
            command(s, ["import", kind, str(path)])
        rules = Path(tmp) / "rules.toml"
        rules.write_text(RULES_TOML)
        command(s, ["rules", "load", str(rules)])
    command(s, ["profile", "add", "chaos-imap", "--protocol", "imap", "--host", "127.0.0.1",
                "--port", str(s.imap_port), "--tls", "none", "--poll-interval", "1"])
    dovecot.add_user(w.base, w.login, w.password)
    os.environ[PASSWORD_ENV] = w.password  # `mailbox add --password-env` reads it
    command(s, ["mailbox", "add", mail.FORWARD_ADDRESS, "--profile", "chaos-imap",
                "--owner", "forward", "--username", w.login, "--password-env", PASSWORD_ENV])
    for uid, address in mail.FORWARDERS:
        command(s, ["mailbox", "add", address, "--owner", "user", "--owner-id", uid,
                    "--via", mail.FORWARD_ADDRESS])
    write_maildir(dovecot.maildir(w.base, w.login), w.mails)


def write_maildir(maildir: Path, mails: tuple[mail.MailSpec, ...]) -> int:
    """Every forward as a file in ``Maildir/new`` (Dovecot gives them UIDs on the next
    login), owned by the mail user; returns the bytes written."""
    vmail = pwd.getpwnam(dovecot.MAIL_USER)
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    total = 0
    stamp = time.time_ns()
    for spec in mails:
        data = mail.forward(spec, AUTHSERV_ID).replace(b"\r\n", b"\n")  # Maildir: LF lines
        tmp = maildir / "tmp" / f"{stamp}.c{spec.index}.chaos"
        tmp.write_bytes(data)
        os.chown(tmp, vmail.pw_uid, vmail.pw_gid)
        tmp.rename(maildir / "new" / tmp.name)  # Maildir delivery: tmp, then new
        total += len(data)
    for path in (maildir.parent, maildir, *(maildir / s for s in ("new", "cur", "tmp"))):
        os.chown(path, vmail.pw_uid, vmail.pw_gid)
    return total


def remove(w: World) -> None:
    """Drop the schema, the topics and consumer groups and the mail user. Best effort: a run
    that failed half-way leaves less to remove."""
    with contextlib.suppress(Exception), connect(w.base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(w.schema)))
    admin = kafka.make_admin(w.base)
    try:
        prefix = f"{w.settings.topic_prefix}."
        with contextlib.suppress(KafkaError):
            groups = [str(g["group_id"]) for g in admin.list_groups()]
            ours = [g for g in groups if g.startswith(prefix)]
            if ours:
                admin.delete_groups(ours)
        with contextlib.suppress(KafkaError):
            topics = [t for t in admin.list_topics() if t.startswith(prefix)]
            if topics:
                admin.delete_topics(topics)
    finally:
        admin.close()
    dovecot.user_file(w.base, w.login).unlink(missing_ok=True)
    shutil.rmtree(dovecot.mail_root(w.base) / w.login, ignore_errors=True)
