"""Ingest throughput of one process against the local Dovecot: messages/s and MB/s.

Seeds N messages straight into a fresh user's ``Maildir/new`` (fast), then times one
``Ingestor.run_once`` pass: IMAP FETCH in batches, publish with acks=all, checkpoint and flag.
Uses its own Dovecot user, topic prefix and database schema, dropped at the end.

    .venv/bin/python bench/ingest.py [--messages 2000] [--size 20000]
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

# This file is named like the ingest package; run as a script, its folder comes first on the
# path and would shadow the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from ingest import credentials, store  # noqa: E402
from ingest.model import Mailbox, OwnerKind, Profile, Protocol, Tls  # noqa: E402
from ingest.runner import Ingestor  # noqa: E402
from mailroom import settings as settings_module  # noqa: E402
from mailroom.console.stack import dovecot  # noqa: E402
from mailroom.db import connect  # noqa: E402
from mailroom.db.migrate import migrate  # noqa: E402
from mailroom.kafka import make_admin, make_producer  # noqa: E402
from mailroom.topics import ensure_topics, topic_specs  # noqa: E402


def seed(maildir: str, count: int, size: int) -> int:
    new = os.path.join(maildir, "new")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    vmail = pwd.getpwnam(dovecot.MAIL_USER)
    total = 0
    for i in range(count):
        msg = EmailMessage()
        msg["From"], msg["To"] = f"s{i}@example.org", "bench@example.com"
        msg["Subject"], msg["Message-ID"] = f"bench {i}", f"<b{i}.{uuid.uuid4().hex}@example.org>"
        msg.set_content("x" * size)
        data = bytes(msg)
        path = os.path.join(new, f"{time.time_ns()}.b{i}.bench")
        with open(path, "wb") as out:
            out.write(data)
        os.chown(path, vmail.pw_uid, vmail.pw_gid)
        total += len(data)
    for root, dirs, _files in os.walk(os.path.dirname(maildir)):
        for d in dirs:
            os.chown(os.path.join(root, d), vmail.pw_uid, vmail.pw_gid)
    os.chown(os.path.dirname(maildir), vmail.pw_uid, vmail.pw_gid)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=20_000, help="body bytes per message")
    args = parser.parse_args()
    name = "bench" + uuid.uuid4().hex[:8]
    base = settings_module.load()
    schema = f"ingest_{name}"
    s = base.replace(topic_prefix=f"bench.{name}",
                     database_url=f"{base.dsn} options='-csearch_path={schema}'")
    with connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    admin = make_admin(s)
    try:
        ensure_topics(admin, topic_specs(s))
        dovecot.add_user(base, name, "pw")
        seeded = seed(str(dovecot.maildir(base, name)), args.messages, args.size)
        with connect(s) as conn:
            migrate(conn)
            pid = store.add_profile(conn, Profile("bench", Protocol.IMAP, "127.0.0.1",
                                                  s.imap_port, tls=Tls.NONE))
            store.add_mailbox(conn, Mailbox(f"{name}@example.com", OwnerKind.USER, pid, name,
                                            credentials.encrypt(s, "pw")))
            conn.commit()
            producer = make_producer(s)
            ing = Ingestor(s, conn, producer, lambda data: "")
            started, cpu = time.perf_counter(), time.process_time()
            n = ing.run_once()
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu  # every thread of this process: the producer's too
            producer.close()
        print(f"ingest: {n} messages, {seeded / 1e6:.1f} MB in {elapsed:.2f} s -> "
              f"{n / elapsed:,.0f} messages/s, {seeded / 1e6 / elapsed:.1f} MB/s, "
              f"{cpu / max(n, 1) * 1000:.2f} ms CPU a message "
              f"(one process, batches of 100, acks=all)")
    finally:
        admin.delete_topics([t.name for t in topic_specs(s)])
        admin.close()
        with connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
