"""Fixtures for persist's tests: a fresh, migrated PostgreSQL schema per test (real database,
never a fake), reference records the plans name, and the codec."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.db.migrate import migrate
from mailroom.settings import Settings

REFERENCE_SQL = """
INSERT INTO users (id, full_name) VALUES ('alice', 'Alice A'), ('bob', 'Bob B');
INSERT INTO queues (id, name) VALUES ('support', 'Support'), ('sales', 'Sales');
INSERT INTO accounts (id, name, owner_id) VALUES ('a-customer', 'Customer Ltd', 'alice');
INSERT INTO contacts (id, first_name, last_name, account_id, owner_id)
    VALUES ('c-ann', 'Ann', 'Example', 'a-customer', 'alice');
INSERT INTO email_addresses (record_kind, record_id, address, is_primary) VALUES
    ('user', 'alice', 'alice@acme.example', true), ('user', 'bob', 'bob@acme.example', true),
    ('queue', 'support', 'support@acme.example', true),
    ('queue', 'sales', 'sales@acme.example', true),
    ('contact', 'c-ann', 'ann@customer.example', true);
"""


@pytest.fixture
def persist_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    try:
        connect(isolated_settings).close()
    except Exception:  # noqa: BLE001 - any failure means: no database here
        pytest.skip("PostgreSQL of the local stack is not reachable (mailroom stack up)")
    schema = f"persist_{unique_name}"
    with connect(isolated_settings, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    settings = isolated_settings.replace(
        # In the DSN, so subprocesses given MAILROOM_DATABASE_URL use the schema too.
        database_url=f"{isolated_settings.dsn} options='-csearch_path={schema}'",
    )
    with connect(settings) as conn:
        migrate(conn)
        conn.execute(REFERENCE_SQL)
        conn.commit()
    try:
        yield settings
    finally:
        with connect(isolated_settings, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def db(persist_settings: Settings) -> Iterator[psycopg.Connection]:
    with connect(persist_settings) as conn:
        yield conn


@pytest.fixture(scope="session")
def codec(base_settings: Settings) -> Codec:
    return Codec.from_settings(base_settings)
