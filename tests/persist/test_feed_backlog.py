"""The change feed's outbox as doctor sees it (PostgreSQL only): which records a change notes,
the backlog, whether a relay leads, and the verdict."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from pipeline_testing import REFERENCE_SQL, own_schema

from mailroom.console.doctor import _check_feed
from mailroom.db import connect
from mailroom.settings import Settings
from persist import outbox

pytestmark = pytest.mark.integration


@pytest.fixture
def outbox_db(isolated_settings: Settings, unique_name: str) -> Iterator[psycopg.Connection]:
    with own_schema(isolated_settings, f"outbox_{unique_name}",
                    prepare=lambda conn: conn.execute(REFERENCE_SQL)) as settings, \
            connect(settings, autocommit=True) as conn:
        conn.execute("UPDATE record_outbox SET published_at = now()")  # the reference data
        yield conn


def test_the_latest_change_of_each_record_is_published_once() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [outbox.Noted(1, "email_activity", "7", "persist", at),
            outbox.Noted(2, "case", "3", "persist", at),
            outbox.Noted(3, "email_activity", "7", "", at)]
    assert [n.seq for n in outbox.latest_per_record(rows)] == [2, 3]


def test_a_user_edit_and_a_deletion_are_noted_with_their_writer(
    outbox_db: psycopg.Connection,
) -> None:
    outbox_db.execute("UPDATE contacts SET last_name = 'Smith' WHERE id = 'c-ann'")
    with outbox_db.transaction():
        outbox_db.execute("SELECT set_config('mailroom.writer', 'persist', true)")
        outbox_db.execute("DELETE FROM email_addresses WHERE record_id = 'c-ann'")
    # An address of a user is no contact's: nothing to note.
    outbox_db.execute("UPDATE email_addresses SET is_primary = is_primary "
                      "WHERE record_kind = 'user'")
    noted = outbox.pending(outbox_db, 10)
    assert [(n.record_type, n.record_id, n.writer) for n in noted] == [
        ("contact", "c-ann", ""), ("contact", "c-ann", "persist")]


def test_doctor_says_when_the_feed_is_behind(outbox_db: psycopg.Connection) -> None:
    assert _check_feed(outbox_db).level == "OK"
    outbox_db.execute("UPDATE contacts SET last_name = 'Smith' WHERE id = 'c-ann'")
    finding = _check_feed(outbox_db)
    assert finding.level == "WARN" and "no relay is running" in finding.detail
    assert "mailroom run feed" in finding.fix

    with connect_like(outbox_db) as relay:  # a relay holds the schema's lock
        relay.execute("SELECT pg_advisory_lock(%s, %s)", outbox.lock_key(relay))
        assert _check_feed(outbox_db).level == "OK"
        outbox_db.execute("UPDATE record_outbox SET noted_at = now() - interval '10 minutes'")
        finding = _check_feed(outbox_db)
        assert finding.level == "WARN" and finding.detail.startswith("behind: ")
        assert outbox.backlog(outbox_db).relay_running
    outbox_db.execute("UPDATE record_outbox SET published_at = now()")
    assert _check_feed(outbox_db).level == "OK"


def connect_like(conn: psycopg.Connection) -> psycopg.Connection:
    """Another session on the same database and schema."""
    row = conn.execute("SELECT current_schema()").fetchone()
    assert row is not None
    return psycopg.connect(conn.info.dsn, password=conn.info.password, autocommit=True,
                           options=f"-csearch_path={row[0]}")
