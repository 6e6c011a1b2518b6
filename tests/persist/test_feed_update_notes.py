"""The change feed's UPDATE notes (migration 0072): a row updated by the (sub)transaction that
wrote it is not noted again — the write already was, in the same subtransaction — while every
update of a version an earlier transaction wrote is, and a row moved to another record notes the
record it left as well as the one it joined."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from pipeline_testing import REFERENCE_SQL, own_schema

from mailroom.db import connect
from mailroom.settings import Settings
from persist import outbox

pytestmark = pytest.mark.integration


@pytest.fixture
def notes_db(isolated_settings: Settings, unique_name: str) -> Iterator[psycopg.Connection]:
    with own_schema(isolated_settings, f"notes_{unique_name}",
                    prepare=lambda conn: conn.execute(REFERENCE_SQL)) as settings, \
            connect(settings, autocommit=True) as conn:
        conn.execute("UPDATE record_outbox SET published_at = now()")  # the reference data
        yield conn


def noted(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return [(n.record_type, n.record_id) for n in outbox.pending(conn, 100)]


def test_updates_of_a_row_the_transaction_wrote_add_no_note(
    notes_db: psycopg.Connection,
) -> None:
    with notes_db.transaction():  # as persist does: insert, then set what it learnt later
        notes_db.execute("INSERT INTO contacts (id, first_name, last_name) "
                         "VALUES ('c-bob', 'Bob', 'Example')")
        notes_db.execute("UPDATE contacts SET last_name = 'Sample' WHERE id = 'c-bob'")
        notes_db.execute("UPDATE contacts SET owner_id = 'alice' WHERE id = 'c-bob'")
    assert noted(notes_db) == [("contact", "c-bob")]
    # A CRM user's edit of that one row, in a transaction of its own: noted.
    notes_db.execute("UPDATE contacts SET first_name = 'Robert' WHERE id = 'c-bob'")
    assert noted(notes_db) == [("contact", "c-bob")] * 2


def test_an_update_after_a_rolled_back_savepoint_is_noted(
    notes_db: psycopg.Connection,
) -> None:
    with notes_db.transaction():
        with pytest.raises(RuntimeError), notes_db.transaction():
            notes_db.execute("UPDATE contacts SET last_name = 'Gone' WHERE id = 'c-ann'")
            raise RuntimeError("the savepoint is rolled back, and its note with it")
        assert noted(notes_db) == []
        # The version updated now is the committed one again: this update notes the contact.
        notes_db.execute("UPDATE contacts SET last_name = 'Kept' WHERE id = 'c-ann'")
        notes_db.execute("UPDATE contacts SET first_name = 'Anne' WHERE id = 'c-ann'")
    assert noted(notes_db) == [("contact", "c-ann")]


def test_a_row_moved_to_another_record_notes_both(notes_db: psycopg.Connection) -> None:
    notes_db.execute("INSERT INTO contacts (id, first_name, last_name) "
                     "VALUES ('c-bob', 'Bob', 'Example')")
    notes_db.execute("UPDATE record_outbox SET published_at = now()")
    # Ann's address moves to Bob: Bob's state changed, and Ann's (she lost it).
    notes_db.execute("UPDATE email_addresses SET record_id = 'c-bob' "
                     "WHERE address = 'ann@customer.example'")
    assert sorted(noted(notes_db)) == [("contact", "c-ann"), ("contact", "c-bob")]
    notes_db.execute("UPDATE record_outbox SET published_at = now()")
    # Within the transaction that wrote it, too: the address written for Bob, then moved to
    # Ann, notes Bob (its insert) and Ann (the move).
    with notes_db.transaction():
        notes_db.execute("INSERT INTO email_addresses (record_kind, record_id, address) "
                         "VALUES ('contact', 'c-bob', 'bob@customer.example')")
        notes_db.execute("UPDATE email_addresses SET record_id = 'c-ann' "
                         "WHERE address = 'bob@customer.example'")
    assert set(noted(notes_db)) == {("contact", "c-ann"), ("contact", "c-bob")}
    notes_db.execute("UPDATE record_outbox SET published_at = now()")
    # An address becoming a user's leaves the contact it belonged to; a user is no record.
    notes_db.execute("UPDATE email_addresses SET record_kind = 'user', record_id = 'bob' "
                     "WHERE address = 'bob@customer.example'")
    assert noted(notes_db) == [("contact", "c-ann")]


def test_each_row_of_a_many_row_insert_is_noted(notes_db: psycopg.Connection) -> None:
    notes_db.execute("INSERT INTO contacts (id, first_name) VALUES ('c-bob', 'Bob'), "
                     "('c-cy', 'Cy') ON CONFLICT DO NOTHING")
    notes_db.execute("INSERT INTO contacts (id, first_name) VALUES ('c-bob', 'Bob') "
                     "ON CONFLICT DO NOTHING")  # inserts nothing: notes nothing
    assert noted(notes_db) == [("contact", "c-bob"), ("contact", "c-cy")]
