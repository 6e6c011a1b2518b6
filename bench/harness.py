"""A bench run's own world on the local stack, and its stage processes.

Everything is named after the run — topic prefix ``bench.<name>``, schema ``<name>``, Dovecot
users ``<name>-<local part>`` — so a run never meets the demo, tests or another run.
Configuration goes through the product's own commands (``mailroom import``, ``rules load``,
``profile add``, ``mailbox add``) as an administrator types them; only the mail is written
straight into the Maildirs, because APPENDing thousands of messages would take longer than
the pipeline needs to process them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from kafka.errors import KafkaError
from psycopg import sql

from bench.mailgen import AUTHSERV_ID, DIRECT, DOMAIN, FORWARD_LOCAL, FORWARDERS, Mail
from mailroom import kafka
from mailroom.commands.run import has_processes
from mailroom.console.demo.pipeline import Child, Children
from mailroom.console.demo.seed import command
from mailroom.console.stack import dovecot
from mailroom.db import connect
from mailroom.db.connection import DatabaseUnavailable
from mailroom.db.migrate import migrate
from mailroom.settings import Settings

PASSWORD_ENV = "MAILROOM_BENCH_MAILBOX_PASSWORD"
HOST = "mx.bench.example"  # the delivering host, in Maildir file names
_DELIVERIES = itertools.count()  # a name's Q<n>: unique in this process, across calls too
STAGES = ("ingest", "unwrap", "route", "persist")
RULES_TOML = """
# Every email of every mailbox is tracked: the bench measures the whole path of each one.
[track]
default = "all"
"""


@dataclass(frozen=True)
class World:
    """One run's names and the settings every process of it is started with."""

    name: str
    settings: Settings
    base: Settings
    password: str

    def login(self, local: str) -> str:
        return f"{self.name}-{local}"

    def maildir(self, local: str) -> Path:
        return dovecot.maildir(self.base, self.login(local))

    @property
    def mailboxes(self) -> tuple[str, ...]:
        """Local parts of the mailboxes ingest logs in to (forwarders' mail comes via one)."""
        return (FORWARD_LOCAL, *DIRECT)


def world(base: Settings, label: str) -> World:
    name = f"bench_{label}_{uuid.uuid4().hex[:6]}"
    settings = base.replace(
        topic_prefix=f"bench.{name}",
        # In the DSN, so stage processes given MAILROOM_DATABASE_URL use the schema too.
        database_url=f"{base.dsn} options='-csearch_path={name}'",
        unwrap_authserv_id=AUTHSERV_ID,
    )
    return World(name, settings, base, "pw-" + uuid.uuid4().hex[:12])


def create(w: World, *, pipeline: bool = True) -> None:
    """Schema, mail users, and for a pipeline run: topics, reference records, rules, profile
    and mailboxes (the forward mailbox, its forwarders, the directly polled users)."""
    with connect(w.base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(w.name)))
    for local in w.mailboxes:
        dovecot.add_user(w.base, w.login(local), w.password)
        _ensure_maildir(w.maildir(local))
    if not pipeline:
        return
    create_storage(w)
    _configure(w)


def create_storage(w: World) -> None:
    """The run's database schema, migrated, and its topics."""
    with connect(w.settings) as conn:
        migrate(conn)
    admin = kafka.make_admin(w.settings)
    try:
        from mailroom.topics import ensure_topics, topic_specs

        ensure_topics(admin, topic_specs(w.settings))
    finally:
        admin.close()


def _configure(w: World) -> None:
    s = w.settings
    users = [f"u-{local},{local.title()},{local}@{DOMAIN}" for local in (*FORWARDERS, *DIRECT)]
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-") as tmp:
        path = Path(tmp) / "users.csv"
        path.write_text("\n".join(["id,name,emails", *users]) + "\n")
        command(s, ["import", "users", str(path)])
        rules = Path(tmp) / "rules.toml"
        rules.write_text(RULES_TOML)
        command(s, ["rules", "load", str(rules)])
    command(s, ["profile", "add", "bench-imap", "--protocol", "imap", "--host", "127.0.0.1",
                "--port", str(s.imap_port), "--tls", "none", "--poll-interval", "1"])
    os.environ[PASSWORD_ENV] = w.password  # `mailbox add --password-env` reads it
    forward = f"{FORWARD_LOCAL}@{DOMAIN}"
    command(s, ["mailbox", "add", forward, "--profile", "bench-imap", "--owner", "forward",
                "--username", w.login(FORWARD_LOCAL), "--password-env", PASSWORD_ENV])
    for local in FORWARDERS:
        command(s, ["mailbox", "add", f"{local}@{DOMAIN}", "--owner", "user",
                    "--owner-id", f"u-{local}", "--via", forward])
    for local in DIRECT:
        command(s, ["mailbox", "add", f"{local}@{DOMAIN}", "--profile", "bench-imap",
                    "--owner", "user", "--owner-id", f"u-{local}",
                    "--username", w.login(local), "--password-env", PASSWORD_ENV])


def remove(w: World) -> None:
    """Drop the schema, topics, consumer groups and mail users. Best effort: a run that failed
    half-way leaves less to remove."""
    with contextlib.suppress(Exception), connect(w.base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(w.name)))
    with contextlib.suppress(Exception):
        _remove_topics(w)
    for local in w.mailboxes:
        dovecot.user_file(w.base, w.login(local)).unlink(missing_ok=True)
        shutil.rmtree(dovecot.mail_root(w.base) / w.login(local), ignore_errors=True)


def _remove_topics(w: World) -> None:
    admin = kafka.make_admin(w.base)
    try:
        prefix = f"{w.settings.topic_prefix}."
        with contextlib.suppress(KafkaError):
            ours = [str(g["group_id"]) for g in admin.list_groups()
                    if str(g["group_id"]).startswith(prefix)]
            if ours:
                admin.delete_groups(ours)
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        if topics:
            admin.delete_topics(topics)
    finally:
        admin.close()


class Poller:
    """One autocommit connection for polling, opened again when the database went away (a
    restart of the shared PostgreSQL should cost a bench a pause, not the run)."""

    def __init__(self, settings: Settings, patience_s: float = 120.0) -> None:
        self.settings, self.patience_s = settings, patience_s
        self.conn: psycopg.Connection | None = None
        self.reconnects = 0

    def query(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + self.patience_s
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = connect(self.settings, autocommit=True)
                return self.conn.execute(query, params).fetchall()
            except (psycopg.OperationalError, DatabaseUnavailable):
                self.close()
                self.reconnects += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


def count_rows(settings: Settings) -> int:
    """Email activities persist has stored."""
    with connect(settings) as conn:
        return int(conn.execute("SELECT count(*) FROM email_activities").fetchone()[0])


def dead_letters(settings: Settings) -> int:
    """Records on the run's dead-letter topic (beginning to end, every partition)."""
    from kafka import KafkaConsumer, TopicPartition

    config = kafka.consumer_config(settings, "unused")
    config["group_id"] = None
    consumer = KafkaConsumer(**config)
    try:
        topic = settings.topic("dlq")
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends, begins = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
        return sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        consumer.close()


# --- mail ------------------------------------------------------------------------------------
def _ensure_maildir(maildir: Path) -> None:
    vmail = pwd.getpwnam(dovecot.MAIL_USER)
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for path in (maildir.parent, maildir, *(maildir / s for s in ("new", "cur", "tmp"))):
        os.chown(path, vmail.pw_uid, vmail.pw_gid)


@dataclass(frozen=True)
class Staged:
    """A message written into ``tmp/``, not yet delivered (:func:`deliver` renames it)."""

    mail: Mail
    tmp: Path
    new: Path


def stage_mail(w: World, mails: Iterable[Mail]) -> list[Staged]:
    """Write each message under its mailbox's ``Maildir/tmp`` (Dovecot does not see it there),
    owned by the mail user, so a timed phase can start with a burst of cheap renames."""
    vmail = pwd.getpwnam(dovecot.MAIL_USER)
    out = []
    stamp = time.time()
    for m in mails:
        maildir = w.maildir(m.mailbox)
        data = m.data.replace(b"\r\n", b"\n")  # Maildir files have LF lines
        name = maildir_name(stamp, next(_DELIVERIES), data)
        tmp = maildir / "tmp" / name
        tmp.write_bytes(data)
        os.chown(tmp, vmail.pw_uid, vmail.pw_gid)
        out.append(Staged(m, tmp, maildir / "new" / name))
    return out


def maildir_name(stamp: float, n: int, data: bytes) -> str:
    """The file name Dovecot's own delivery (LMTP, LDA) gives message ``n`` delivered at
    ``stamp``: ``time.MusecsPpidQn.host,S=size,W=size with CRLF lines``.

    Why not any unique name: Dovecot finds a file's UID through a hash of its name up to the
    ``:``, a hash that keeps little of what comes before a long common tail. Names ending in
    the same dozen characters (``.b17.c104e2.bench``) fell into a few thousand buckets, so
    every sync of a large folder compared each name with thousands of others — a SELECT of
    12,000 messages took 0.7 s on an idle machine, and Dovecot's cost an email grew with the
    folder on both sides of the bench. Real deliveries' names do not collide like that."""
    seconds = int(stamp)
    micros = int((stamp - seconds) * 1_000_000)
    # The size IMAP reports: Dovecot counts a byte more for each LF without a CR before it
    # (``\r\r\n`` in the mail is still ``\r\n`` once CRLFs became LFs).
    vsize = len(data) + data.count(b"\n") - data.count(b"\r\n")
    return f"{seconds}.M{micros}P{os.getpid()}Q{n}.{HOST},S={len(data)},W={vsize}"


def deliver(staged: Staged) -> float:
    """Move one message into ``Maildir/new`` as a delivery agent does; returns when (epoch s)."""
    staged.tmp.rename(staged.new)
    return time.time()


def lay(w: World, mails: Iterable[Mail]) -> int:
    """Deliver messages at once; returns their bytes."""
    staged = stage_mail(w, mails)
    for s in staged:
        deliver(s)
    return sum(len(s.mail.data) for s in staged)


# --- stage processes ---------------------------------------------------------------------------
class StageProcesses:
    """K ``mailroom run STAGE`` processes per stage, each in its own session (so the runner's
    worker subprocess belongs to it); logs under ``log_dir``."""

    def __init__(self, w: World, log_dir: Path) -> None:
        self.children = Children(w.settings, log_dir)
        self.stages = tuple(s for s in STAGES if has_processes(s, w.settings))

    def start(self, stage: str, k: int = 1) -> list[Child]:
        return [self.children.start(f"{stage}-{i}", ["run", stage]) for i in range(1, k + 1)]

    def start_all(self, k: int) -> None:
        for stage in reversed(self.stages):  # consumers first: nothing waits for a group to form
            self.start(stage, k)

    def pids(self) -> dict[str, list[int]]:
        """Stage name -> pids of its processes (the roots of their process trees)."""
        out: dict[str, list[int]] = {}
        for c in self.children.children:
            out.setdefault(c.name.rsplit("-", 1)[0], []).append(c.process.pid)
        return out

    def dead(self) -> list[str]:
        return [f"{c.name} exited {c.process.returncode}; its log ends:\n"
                f"{self.children.tail(c, 8)}" for c in self.children.dead()]

    def stop(self) -> dict[str, int | None]:
        return self.children.stop()
