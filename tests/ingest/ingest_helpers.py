"""Helpers for ingest's integration tests: real Dovecot, Kafka and PostgreSQL, no fakes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import psycopg
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from kafka import TopicPartition

from ingest import credentials, store
from ingest.model import AfterIngest, Folder, Mailbox, OwnerKind, Profile, Protocol, Tls
from ingest.runner import Ingestor
from mailroom.codec import Codec
from mailroom.kafka import make_consumer, make_producer
from mailroom.records.mailbox import MailboxRecord
from mailroom.records.raw import RawMail
from mailroom.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _env(settings: Settings, fault: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "MAILROOM_TOPIC_PREFIX": settings.topic_prefix,
        "MAILROOM_DATABASE_URL": settings.database_url,
        "MAILROOM_UNWRAP_AUTHSERV_ID": settings.unwrap_authserv_id,
        "MAILROOM_STATE_DIR": str(settings.state_path),
        "MAILROOM_FAULT_POINTS": fault,
        # A dead process's mailboxes move within seconds (the broker has no initial delay).
        "MAILROOM_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "MAILROOM_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
    })
    return env


def run_ingest(settings: Settings, fault: str = "", *, stderr: object = subprocess.PIPE,
               extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``mailroom run ingest`` as a subprocess with this test's topics, schema and faults.

    It serves the mailboxes on the mailboxes topic: publish them first
    (:func:`publish_mailboxes`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mailroom.cli", "run", "ingest"], cwd=REPO,
        env={**_env(settings, fault), **(extra_env or {})},
        stderr=stderr,  # type: ignore[call-overload]
    )


def publish_mailboxes(settings: Settings, db: psycopg.Connection) -> int:
    """Put every mailbox of the test's schema on its mailboxes topic (``mailbox publish``)."""
    from ingest import announce

    db.commit()
    producer = make_producer(settings)
    try:
        return announce.publish(settings, db, producer)
    finally:
        db.commit()
        producer.close()


def read_mailboxes(settings: Settings, timeout_s: float = 10.0) -> dict[str, MailboxRecord]:
    """The latest record per mailbox id on the test's mailboxes topic."""
    codec = Codec.from_settings(settings)
    consumer = make_consumer(settings, group_id=f"reader-{time.monotonic_ns()}")
    topic = settings.topic("mailboxes")
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        found: dict[str, MailboxRecord] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(
            consumer.position(tp) < ends[tp] for tp in parts
        ):
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    found[r.key.decode()] = codec.decode_record(r.value, MailboxRecord)
        return found
    finally:
        consumer.close()


def message(i: int, subject: str = "hello", body: str = "", size: int = 0) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"sender{i}@example.org"
    msg["To"] = "someone@example.com"
    msg["Subject"] = f"{subject} {i}"
    msg["Message-ID"] = make_msgid(domain="example.org")
    msg.set_content((body or f"body of message {i}\n") + "x" * size)
    return bytes(msg).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def imap_login(settings: Settings, user: str, password: str) -> IMAPClient:
    # A user added within the same second as the previous one may not be seen at once
    # (Dovecot notices passwd-file changes by mtime): retry briefly.
    for attempt in range(10):
        client = IMAPClient("127.0.0.1", port=settings.imap_port, ssl=False, timeout=30)
        try:
            client.login(user, password)
            return client
        except LoginError:
            client.shutdown()
            if attempt == 9:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def append(settings: Settings, user: str, password: str, messages: list[bytes],
           folder: str = "INBOX") -> None:
    with imap_login(settings, user, password) as client:
        if not client.folder_exists(folder):
            client.create_folder(folder)
        for m in messages:
            client.append(folder, m)


def add_mailbox(db: psycopg.Connection, settings: Settings, user: str, password: str, *,
                protocol: Protocol = Protocol.IMAP, tls: Tls = Tls.NONE, port: int = 0,
                trust_cafile: str = "", owner: OwnerKind = OwnerKind.USER,
                folders: tuple[Folder, ...] = (Folder(),),
                after: AfterIngest = AfterIngest.FLAG, move_to: str = "") -> Mailbox:
    default_port = settings.imap_port if protocol is Protocol.IMAP else settings.pop3_port
    pid = store.add_profile(db, Profile(
        f"p-{user}", protocol, "127.0.0.1", port or default_port, tls=tls,
        trust_cafile=trust_cafile, poll_interval_s=1,
    ))
    mid = store.add_mailbox(db, Mailbox(
        f"{user}@example.com", owner, pid, user, credentials.encrypt(settings, password),
        folders=folders, after_ingest=after, move_to=move_to,
    ))
    db.commit()
    return store.mailbox(db, mid)


def ingestor(settings: Settings, db: psycopg.Connection) -> Ingestor:
    def no_blobs(data: bytes) -> str:
        raise AssertionError("no claim check expected in this test")

    return Ingestor(settings, db, make_producer(settings), no_blobs)


def read_raw(settings: Settings, expected: int, timeout_s: float = 30.0) -> list[RawMail]:
    """Every record on this test's raw topic (waits until ``expected`` have arrived)."""
    codec = Codec.from_settings(settings)
    consumer = make_consumer(settings, group_id=f"reader-{time.monotonic_ns()}")
    topic = settings.topic("raw")
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        found: list[RawMail] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    assert len(r.value) <= settings.claim_check_bytes  # claim check works
                    raw = codec.decode_record(r.value, RawMail)
                    assert r.key == raw.identity.encode()
                    found.append(raw)
            if len(found) >= expected:
                # a little longer: catch repeats beyond the expected count
                for records in consumer.poll(timeout_ms=1000).values():
                    found += [codec.decode_record(r.value, RawMail) for r in records]
                break
        return found
    finally:
        consumer.close()


def seed_maildir(settings: Settings, user: str, messages: list[bytes]) -> None:
    """Deliver straight into the user's ``Maildir/new`` (fast, and no login in Dovecot's log:
    tests that read the log see only the ingest processes' sessions)."""
    import pwd
    import uuid

    from mailroom.console.stack import dovecot

    maildir = dovecot.maildir(settings, user)
    vmail = pwd.getpwnam(dovecot.MAIL_USER)
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for path in (maildir.parent, maildir, maildir / "new", maildir / "cur", maildir / "tmp"):
        os.chown(path, vmail.pw_uid, vmail.pw_gid)
    for data in messages:
        # Written under tmp/ and renamed, as a delivery agent does: never half a message in new/.
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.mailroomtest"
        tmp = maildir / "tmp" / name
        tmp.write_bytes(data)
        os.chown(tmp, vmail.pw_uid, vmail.pw_gid)
        tmp.rename(maildir / "new" / name)
