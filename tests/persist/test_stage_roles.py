"""Least privilege: each stage's database role can do its own work and nothing else.

The roles migration (0051) runs with a prefix of this test's own (roles are cluster-wide), into
a schema of its own; login users made the documented way connect as each stage. Route cannot
write records, unwrap cannot write activities; each can still do its real work (route loads its
snapshot, unwrap reads forwarders and stores a blob, persist applies a plan, ingest moves a
mailbox's status and counts fetch attempts). A second schema migrated with the same prefix
reuses the roles.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import cast

import psycopg
import pytest
from kafka import TopicPartition
from persistbuild import apply, email, make_plan, rows
from pipeline_testing import REFERENCE_SQL
from psycopg import errors
from psycopg.conninfo import make_conninfo

from ingest import credentials
from ingest import store as mailbox_store
from ingest.job import Job
from ingest.model import Mailbox, OwnerKind, Profile, Protocol
from ingest.unfetchable import Ledger, Message
from mailroom.attempts import AttemptLog, Start
from mailroom.blobs import BlobStore
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.db.migrate import migrate
from mailroom.settings import Settings
from persist.offsets import claim
from persist.privacy import forget_blobs, sweep_blobs
from route import loader, store
from unwrap.forwarders import load_aliases

pytestmark = pytest.mark.integration
STAGES = ("ingest", "unwrap", "route", "persist")


@pytest.fixture
def roles(base_settings: Settings, unique_name: str) -> Iterator[dict[str, psycopg.Connection]]:
    """A connection per stage, each as a login user in that stage's group role only."""
    try:
        connect(base_settings).close()
    except Exception:  # noqa: BLE001 - any failure means: no database here
        pytest.skip("PostgreSQL of the local stack is not reachable (mailroom stack up)")
    prefix, schemas = f"r{unique_name}", [f"roles_{unique_name}", f"roles2_{unique_name}"]
    conns: dict[str, psycopg.Connection] = {}
    admin = connect(base_settings, autocommit=True)
    try:
        for schema in schemas:
            admin.execute(f"CREATE SCHEMA {schema}")
            with connect(base_settings, schema=schema, autocommit=True) as conn:
                conn.execute("SELECT set_config('mailroom.role_prefix', %s, false)", (prefix,))
                migrate(conn)
        with connect(base_settings, schema=schemas[0]) as conn:
            conn.execute(REFERENCE_SQL)
            pid = mailbox_store.add_profile(conn, Profile("corp", Protocol.IMAP, "imap.x", 993))
            mailbox_store.add_mailbox(conn, Mailbox(
                "support@acme.example", OwnerKind.QUEUE, pid, "support",
                credentials.encrypt(base_settings, "pw"), owner_id="support"))
            conn.commit()
        for stage in STAGES:  # the documented login users (trust auth on the local stack)
            admin.execute(f"CREATE ROLE {prefix}_{stage}_login LOGIN IN ROLE {prefix}_{stage}")
            conns[stage] = psycopg.connect(make_conninfo(
                base_settings.dsn, user=f"{prefix}_{stage}_login",
                options=f"-csearch_path={schemas[0]}"))
        yield conns
    finally:
        for conn in conns.values():
            conn.close()
        for schema in schemas:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        for stage in STAGES:
            admin.execute(f"DROP ROLE IF EXISTS {prefix}_{stage}_login")
            admin.execute(f"DROP ROLE IF EXISTS {prefix}_{stage}")
        admin.execute(f"DROP ROLE IF EXISTS {prefix}_web")  # the dashboard's (0065)
        admin.close()


def refused(conn: psycopg.Connection, sql: str, *args: object) -> bool:
    try:
        conn.execute(sql, args)
    except errors.InsufficientPrivilege:
        conn.rollback()
        return True
    conn.rollback()
    return False


NEW_ACTIVITY = ("INSERT INTO email_activities (dedupe_key, content_hash, subject) "
                "VALUES ('x@y', 'h', 's')")


def test_route_reads_only(roles: dict[str, psycopg.Connection]) -> None:
    route = roles["route"]
    reference = loader.load(route, {})  # its real reads work (mailboxes: from their topic)
    assert "ann@customer.example" in reference.addresses
    store.load(route)
    route.rollback()
    route.autocommit = True  # as the runner's attempt counter uses it
    AttemptLog(route, "g.route").begin([Start("t.unwrapped", 0, 0, 9)])
    route.autocommit = False
    assert refused(route, NEW_ACTIVITY)
    assert refused(route, "INSERT INTO cases (case_key, title) VALUES ('case|x', 't')")
    assert refused(route, "UPDATE contacts SET first_name = 'x'")
    assert refused(route, "INSERT INTO blobs (sha256, size, chunk_count) VALUES (%s, 0, 0)",
                   "0" * 64)
    assert refused(route, "SELECT secret FROM ingest_mailboxes")  # never the credentials
    # ingest's table, not route's: the mailboxes come from their topic
    assert refused(route, "SELECT id, owner_id FROM ingest_mailboxes")


def test_unwrap_writes_blobs_but_no_records(roles: dict[str, psycopg.Connection]) -> None:
    unwrap = roles["unwrap"]
    load_aliases(unwrap)  # the forwarders' own addresses (the rest: the mailboxes topic)
    with unwrap.transaction():
        BlobStore(unwrap).put(b"an attachment")
    assert refused(unwrap, NEW_ACTIVITY)
    assert refused(unwrap, "INSERT INTO activity_parties (activity_id, role, address) "
                           "VALUES (1, 'from', 'a@b')")
    assert refused(unwrap, "SELECT secret FROM ingest_mailboxes")
    assert refused(unwrap, "SELECT id, via_mailbox_id, approved FROM ingest_mailboxes")


def test_persist_applies_plans_and_touches_nothing_else(
    roles: dict[str, psycopg.Connection], codec: Codec
) -> None:
    persist = roles["persist"]
    apply(persist, codec, make_plan(codec, email()))
    assert rows(persist, "SELECT count(*) FROM cases") == [(1,)]
    with persist.transaction():
        claim(persist, "g.persist", [TopicPartition("t.actions", 0)], 1)
    persist.commit()
    persist.autocommit = True  # as the runner's attempt counter uses it
    AttemptLog(persist, "g.persist").begin([Start("t.actions", 0, 0, 9)])
    persist.autocommit = False
    # Blobs of mail not to be kept: condemned, then swept once their grace has run out.
    with persist.transaction():
        ref = BlobStore(persist).put(b"a private scan")
        persist.execute("UPDATE blobs SET last_referenced_at = now() - interval '2 hours' "
                        "WHERE sha256 = %s", (ref,))
        forget_blobs(persist, [ref])
        assert sweep_blobs(persist, timedelta(hours=1)) == [ref]
    assert refused(persist, "UPDATE ingest_mailboxes SET status = 'ok'")
    assert refused(persist, "DELETE FROM users")
    assert refused(persist, "UPDATE route_settings SET token_prefix = 'X'")


def test_ingest_moves_status_not_credentials(roles: dict[str, psycopg.Connection]) -> None:
    ingest = roles["ingest"]
    ingest.execute("UPDATE ingest_mailboxes SET status = 'ok', status_at = now()")
    ingest.commit()
    assert refused(ingest, "UPDATE ingest_mailboxes SET secret = 'x'")
    assert refused(ingest, NEW_ACTIVITY)


def test_ingest_counts_fetch_attempts(roles: dict[str, psycopg.Connection]) -> None:
    """The per-message attempt count (``ingest_fetch_attempts``): every statement the ledger
    makes, as the ingest role."""
    ingest = roles["ingest"]
    row = ingest.execute("SELECT id FROM ingest_mailboxes").fetchone()
    assert row is not None
    # The ledger reads only the job's connection and mailbox id.
    ledger = Ledger(cast(Job, SimpleNamespace(conn=ingest, mailbox_id=int(row[0]))))
    m = Message(f"{row[0]}/INBOX/7/3", "INBOX", uidvalidity=7, uid=3)
    ledger.begin([m])
    assert ledger.begin_alone(m) == 1
    ledger.failed([m], "BYE", count=True)
    assert ledger.imap_suspects("INBOX", 7) == {3}
    assert "BYE" in ledger.last_error(m)
    ledger.prune_imap("INBOX", 7, 3)
    ingest.commit()
    assert ledger.imap_suspects("INBOX", 7) == set()
