"""Fixtures for route's integration tests: a fresh, migrated PostgreSQL schema per test."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from mailroom.db import connect
from mailroom.db.migrate import migrate
from mailroom.settings import Settings


@pytest.fixture
def route_db_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    try:
        connect(isolated_settings).close()
    except Exception:  # noqa: BLE001 - any failure means: no database here
        pytest.skip("PostgreSQL of the local stack is not reachable (mailroom stack up)")
    schema = f"route_{unique_name}"
    with connect(isolated_settings, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    settings = isolated_settings.replace(
        database_url=f"{isolated_settings.dsn} options='-csearch_path={schema}'"
    )
    with connect(settings) as conn:
        migrate(conn)
    try:
        yield settings
    finally:
        with connect(isolated_settings, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def route_db(route_db_settings: Settings) -> Iterator[psycopg.Connection]:
    with connect(route_db_settings) as conn:
        yield conn
