"""The unwrap stage end to end: RawMails on the real broker in, Emails, traces and dead letters out.

The stage runs as ``mailroom run unwrap`` in a subprocess (the real entry point, process
isolation: the handler is pickled into a spawned worker), pointed at this test's topics and
database schema through ``MAILROOM_*``. Forwarders come from the mailboxes topic ingest
publishes (the kernel's mailbox directory), never from ingest's tables.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pipeline_testing
import psycopg
import pytest
from pipeline_testing import own_schema, own_topics, read_all, read_events, stop, wait_for

from ingest import announce, credentials, store
from ingest.model import Mailbox, OwnerKind, Profile, Protocol
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.mailboxes import MailboxDirectory
from mailroom.records.email import Delivery, Email
from mailroom.records.mailbox import MailboxRecord
from mailroom.records.raw import RawMail
from mailroom.settings import Settings
from unwrap.claims import fit
from unwrap.context import Forwarder
from unwrap.forwarders import ForwardMailboxes, forward_mailboxes, load_aliases

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent / "fixtures"
AUTHSERV = "mx.crm.example"
FIELDS = ("topic_prefix", "database_url", "kafka_session_timeout_ms",
          "kafka_heartbeat_interval_ms", "unwrap_authserv_id", "claim_check_bytes",
          "stage_budget_ms")


@pytest.fixture
def stage_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    """Own topics (created as `mailroom topics create` would) and own migrated schema."""
    with own_schema(
        isolated_settings, f"unwrap_{unique_name}",
        topic_partitions=2, kafka_session_timeout_ms=6000, kafka_heartbeat_interval_ms=2000,
        unwrap_authserv_id=AUTHSERV, stage_budget_ms=10_000,
        # Small, so a message with a few 40 KB attachments must shed them to the blob store.
        claim_check_bytes=100_000,
    ) as settings, own_topics(settings):
        yield settings


def configure_mailboxes(conn: psycopg.Connection, settings: Settings) -> dict[str, str]:
    """A forward mailbox, Alice's user mailbox "via" it, and Bob's direct one: their ids."""
    pid = store.add_profile(conn, Profile("corp", Protocol.IMAP, "imap.corp.example", 993))
    secret = credentials.encrypt(settings, "pw")
    fwd = store.add_mailbox(conn, Mailbox("crm-fwd@corp.example", OwnerKind.FORWARD, pid,
                                          "crm-fwd", secret))
    alice = store.add_mailbox(conn, Mailbox("alice@corp.example", OwnerKind.USER, pid, "alice",
                                            secret, owner_id="u-alice", via_mailbox_id=fwd))
    bob = store.add_mailbox(conn, Mailbox("bob@corp.example", OwnerKind.USER, pid, "bob",
                                          secret, owner_id="u-bob"))
    conn.commit()
    announce.publish_now(settings, conn)  # as `mailroom mailbox add` does
    return {"fwd": str(fwd), "alice": str(alice), "bob": str(bob)}


def raw(mailbox_id: str, address: str, kind: str, uid: int, data: bytes, *,
        owner: str | None = None, blob_ref: str | None = None) -> RawMail:
    return RawMail(
        mailbox_id=mailbox_id, mailbox_address=address, owner_kind=kind,  # type: ignore[arg-type]
        folder="INBOX", direction="incoming", protocol="imap",
        fetched_at=datetime(2025, 3, 10, tzinfo=UTC), size=len(data), owner_id=owner,
        uidvalidity=1, uid=uid, content=None if blob_ref else data, blob_ref=blob_ref,
    )


def direct_mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Carol Customer <carol@customer.example>"
    msg["To"] = "bob@corp.example"
    msg["Subject"] = "Order 17"
    msg["Date"] = "Mon, 10 Mar 2025 09:00:00 +0000"
    msg["Message-ID"] = "<Order-17@Customer.Example>"
    msg.set_content("Please confirm order 17.")
    return msg.as_bytes()


def big_forward() -> bytes:
    """Alice forwards (as an attachment) an original with one 300 KB and three 40 KB files."""
    original = EmailMessage()
    original["From"] = "Dan Buyer <dan@other.example>"
    original["To"] = "alice@corp.example"
    original["Subject"] = "Drawings"
    original["Date"] = "Tue, 11 Mar 2025 10:00:00 +0000"
    original["Message-ID"] = "<drawings-1@other.example>"
    original.set_content("Drawings attached.")
    original.add_attachment(os.urandom(300_000), maintype="application", subtype="pdf",
                            filename="plan.pdf")
    for i in range(3):
        original.add_attachment(os.urandom(40_000), maintype="image", subtype="png",
                                filename=f"detail{i}.png")
    outer = EmailMessage()
    outer["Authentication-Results"] = (f"{AUTHSERV}; dkim=pass header.d=corp.example; "
                                       "dmarc=pass header.from=corp.example")
    outer["From"] = "Alice Agent <alice@corp.example>"
    outer["To"] = "crm-fwd@corp.example"
    outer["Subject"] = "FW: Drawings"
    outer["Date"] = "Tue, 11 Mar 2025 10:05:00 +0000"
    outer["Message-ID"] = "<fw-drawings@corp.example>"
    outer.set_content("FYI")
    outer.add_attachment(original)
    return outer.as_bytes()


def produce(settings: Settings, codec: Codec, raws: list[RawMail]) -> None:
    pipeline_testing.produce(settings, settings.topic("raw"),
                             [(r.identity.encode(), codec.encode_record(r)) for r in raws])


def start_stage(settings: Settings) -> subprocess.Popen[bytes]:
    return pipeline_testing.start_stage(settings, "unwrap", FIELDS)


def mailbox(mid: str, address: str, kind: str, owner: str | None = None,
            via: str | None = None, **changes: Any) -> MailboxRecord:
    """A mailbox as the mailboxes topic carries it."""
    return MailboxRecord(mailbox_id=mid, address=address, owner_kind=kind, profile="corp",
                         protocol="imap", host="imap.corp.example", port=993, folders=("INBOX",),
                         after_ingest="flag", enabled=True, approved=True, status="ok",
                         owner_id=owner, via_mailbox_id=via, **changes)


def publish(settings: Settings, codec: Codec, *records: MailboxRecord) -> None:
    pipeline_testing.produce(settings, settings.topic("mailboxes"),
                             [(r.mailbox_id.encode(), codec.encode_record(r)) for r in records])


def test_forwarders_come_from_the_mailbox_directory(stage_settings: Settings) -> None:
    s = stage_settings
    with connect(s) as conn:
        ids = configure_mailboxes(conn, s)
        directory = MailboxDirectory(s)

        def load_forward_mailboxes(directory: MailboxDirectory,
                                   conn: Any) -> ForwardMailboxes:
            # What the stage builds: the runner's read of the directory, the aliases read now.
            return forward_mailboxes(directory.sync().values(), load_aliases(conn()))

        try:
            alice = Forwarder("user", "u-alice")
            assert load_forward_mailboxes(directory, lambda: conn).forwarders == {
                ids["fwd"]: {"alice@corp.example": alice}}
            # The user's own addresses (reference records) count too: the rule may send from one.
            conn.execute("INSERT INTO email_addresses (record_kind, record_id, address) "
                         "VALUES ('user', 'u-alice', 'a.agent@corp.example')")
            conn.commit()
            assert load_forward_mailboxes(directory, lambda: conn).forwarders[ids["fwd"]] == {
                "alice@corp.example": alice, "a.agent@corp.example": alice}
            # An address two users of one forward mailbox claim is trusted for neither.
            carol = store.add_mailbox(conn, Mailbox(
                "carol@corp.example", OwnerKind.USER, store.profiles(conn)[0].id or 0, "carol",
                b"x", owner_id="u-carol", via_mailbox_id=int(ids["fwd"])))
            conn.execute("INSERT INTO email_addresses (record_kind, record_id, address) "
                         "VALUES ('user', 'u-carol', 'alice@corp.example')")
            conn.commit()
            announce.publish_now(s, conn, [carol])
            assert load_forward_mailboxes(directory, lambda: conn).forwarders[ids["fwd"]] == {
                "a.agent@corp.example": alice,
                "carol@corp.example": Forwarder("user", "u-carol")}
        finally:
            directory.close()


def test_a_forwarder_only_on_the_mailboxes_topic_and_one_added_later_are_honoured(
        stage_settings: Settings) -> None:
    """Unwrap reads no table of ingest's: the mailboxes here exist only as topic records. A
    forwarder published after the stage read the topic is found when its forward arrives (the
    directory is read to the topic's end before a forward is refused), not dead-lettered."""
    s = stage_settings
    codec = Codec.from_settings(s)
    publish(s, codec, mailbox("901", "crm-fwd@corp.example", "forward"),
            mailbox("902", "someone@corp.example", "user", "u-someone", via="901"))
    outlook = (FIXTURES / "fwd_rfc822_outlook.eml").read_bytes()  # Alice forwards Quote 1
    proc = start_stage(s)
    try:
        direct = raw("902", "someone@corp.example", "user", 1, direct_mail(), owner="u-someone")
        produce(s, codec, [direct])
        # The stage has read the topic (and so built its table) once it answered this record.
        wait_for(lambda: read_all(s, "unwrapped"), timeout=90)
        publish(s, codec, mailbox("903", "alice@corp.example", "user", "u-alice", via="901"))
        produce(s, codec, [raw("901", "crm-fwd@corp.example", "forward", 2, outlook)])
        out = wait_for(lambda: len(read_all(s, "unwrapped")) >= 2 and read_all(s, "unwrapped"),
                       timeout=90)
    finally:
        stop(proc, timeout=90)
    assert read_all(s, "dlq") == []
    emails = {r.key.decode(): codec.decode_any(r.value) for r in out}
    d = emails["Quote-1@customer.example"].delivery
    assert (d.forwarded_by_user, d.forwarder_address, d.forward_mailbox_id) == (
        "u-alice", "alice@corp.example", "901")
    with connect(s) as conn:  # and none of it is in ingest's tables
        assert conn.execute("SELECT count(*) FROM ingest_mailboxes").fetchone() == (0,)


def test_raw_mails_become_emails_traces_and_dead_letters(stage_settings: Settings) -> None:
    s = stage_settings
    codec = Codec.from_settings(s)
    with connect(s) as conn:
        ids = configure_mailboxes(conn, s)
    fwd, alice = ids["fwd"], "crm-fwd@corp.example"
    raws = [
        raw(ids["bob"], "bob@corp.example", "user", 1, direct_mail(), owner="u-bob"),
        raw(fwd, alice, "forward", 2, (FIXTURES / "fwd_rfc822_outlook.eml").read_bytes()),
        raw(fwd, alice, "forward", 3, (FIXTURES / "spoof_not_forwarder.eml").read_bytes()),
    ]
    produce(s, codec, raws)
    proc = start_stage(s)
    try:
        out = wait_for(lambda: len(read_all(s, "unwrapped")) >= 2 and read_all(s, "unwrapped"),
                       timeout=90)
        dead = wait_for(lambda: read_all(s, "dlq"), timeout=90)
        events = wait_for(lambda: len(read_events(s)) >= 3 and read_events(s), timeout=90)
    finally:
        stop(proc, timeout=90)

    emails = {r.key.decode(): codec.decode_any(r.value) for r in out}
    assert set(emails) == {"Order-17@customer.example", "Quote-1@customer.example"}
    direct = emails["Order-17@customer.example"]
    assert direct.delivery.copy_kind == "direct" and direct.delivery.owner_id == "u-bob"
    assert direct.delivery.source_topic == s.topic("raw")
    forwarded = emails["Quote-1@customer.example"]
    d = forwarded.delivery
    assert (d.copy_kind, d.forwarded_by_user, d.forwarder_address, d.forward_mailbox_id) == (
        "forwarded_rfc822", "u-alice", "alice@corp.example", fwd)

    [record] = dead
    letter = codec.decode_any(record.value)
    assert (letter.stage, letter.reason_code) == ("unwrap", "not_a_forwarder")
    assert "eve@evil.example" in letter.reason
    assert letter.source_topic == s.topic("raw") and letter.source_offset >= 0
    assert letter.source_key == raws[2].identity.encode()
    assert letter.payload == codec.encode_record(raws[2])  # replayable as it was

    by_key = {(e.key, e.event): e for e in events}
    fw = by_key[("Quote-1@customer.example", "unwrapped")]
    assert fw.detail["forwarded_by"] == "u-alice <alice@corp.example>"
    assert fw.detail["via_forward_mailbox"] == fwd and fw.raw_identity == raws[1].identity
    assert by_key[("Order-17@customer.example", "unwrapped")].detail["copy_kind"] == "direct"
    rejected = by_key[(raws[2].identity, "dead_lettered")]
    assert rejected.detail["reason_code"] == "not_a_forwarder"


def test_claim_checks_in_and_out(stage_settings: Settings) -> None:
    s = stage_settings
    codec = Codec.from_settings(s)
    data = big_forward()
    with connect(s) as conn:
        ids = configure_mailboxes(conn, s)
    with connect(s, autocommit=True) as blob_conn:
        store_ = BlobStore(blob_conn)
        ref = str(store_.put(data))
        raws = [raw(ids["fwd"], "crm-fwd@corp.example", "forward", 9, data, blob_ref=ref)]
        produce(s, codec, raws)
        proc = start_stage(s)
        try:
            [record] = wait_for(lambda: read_all(s, "unwrapped"), timeout=90)
        finally:
            stop(proc, timeout=90)
        assert len(record.value) <= s.claim_check_bytes
        email = codec.decode_any(record.value)
        assert record.key == b"drawings-1@other.example"
        assert email.delivery.forwarded_by_user == "u-alice"
        files = {a.name: a for a in email.attachments}
        assert set(files) == {"plan.pdf", "detail0.png", "detail1.png", "detail2.png"}
        assert files["plan.pdf"].blob_ref == files["plan.pdf"].sha256  # over the 256 KB threshold
        shed = [a for a in email.attachments if a.blob_ref]
        assert len(shed) >= 2, "the record had to shed small attachments to fit 100 KB"
        for a in shed:  # every reference resolves, to the bytes it names
            assert a.content is None and store_.exists(a.blob_ref)
            assert len(bytes(store_.get(a.blob_ref))) == a.size


def test_bodies_too_big_for_the_record_go_by_claim_check(stage_settings: Settings) -> None:
    """Bodies alone over the threshold: the whole body becomes a blob-backed attachment and
    the field keeps a prefix, saying so (nothing lost, record within the limit)."""
    codec = Codec.from_settings(stage_settings)
    body = "Zeile mit Umlauten äöü und mehr Text. " * 10_000  # ~400 KB of UTF-8
    email = Email(dedupe_key="big@x.example", content_hash="h", subject="big",
                  direction="incoming", text_body=body, html_body=f"<p>{body}</p>",
                  delivery=Delivery("1", "a@x.example", "user", "u", "INBOX", "direct"))
    with connect(stage_settings, autocommit=True) as conn:
        blobs = BlobStore(conn)
        fitted = fit(email, 100_000, lambda e: len(codec.encode_record(e)), blobs)
        assert len(codec.encode_record(fitted)) <= 100_000
        names = {a.name: a for a in fitted.attachments}
        assert set(names) == {"body.txt", "body.html"}
        assert blobs.get(names["body.txt"].blob_ref).decode() == body
        assert body.startswith(fitted.text_body or "-")
        assert any("whole body is attachment 'body.txt'" in w for w in fitted.warnings)
