"""Fixtures for ingest's integration tests: own DB schema, own Dovecot user, own topics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from mailroom.db import connect
from mailroom.db.migrate import migrate
from mailroom.settings import Settings


def _reachable(settings: Settings) -> bool:
    try:
        connect(settings).close()
    except Exception:  # noqa: BLE001 - any failure means: no database here
        return False
    return True


@pytest.fixture
def db_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    """``isolated_settings`` whose database connections live in a fresh, migrated schema.

    The schema goes into the DSN's ``options``, so subprocesses (``mailroom run ingest``) given
    ``MAILROOM_DATABASE_URL`` use it too. Dropped at the end.
    """
    if not _reachable(isolated_settings):
        pytest.skip("PostgreSQL of the local stack is not reachable (mailroom stack up)")
    schema = f"ingest_{unique_name}"
    with connect(isolated_settings, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    settings = isolated_settings.replace(
        database_url=f"{isolated_settings.dsn} options='-csearch_path={schema}'",
        # the secure setup: without it ingest does not poll forward mailboxes
        unwrap_authserv_id="mx.corp.example",
    )
    with connect(settings) as conn:
        migrate(conn)
    try:
        yield settings
    finally:
        with connect(isolated_settings, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def db(db_settings: Settings) -> Iterator[psycopg.Connection]:
    with connect(db_settings) as conn:
        yield conn


@pytest.fixture
def mail_user(base_settings: Settings) -> tuple[str, str]:
    """A fresh Dovecot user (name, password) on the local stack."""
    from mailroom.console.stack import dovecot

    name = "u" + uuid.uuid4().hex[:10]
    password = "pw-" + uuid.uuid4().hex[:8]
    dovecot.add_user(base_settings, name, password)
    return name, password


@pytest.fixture
def topics(isolated_settings: Settings) -> Settings:
    """Create this test's topics as ``mailroom topics create`` would (no auto-create)."""
    from mailroom.kafka import make_admin
    from mailroom.topics import ensure_topics, topic_specs

    admin = make_admin(isolated_settings)
    try:
        ensure_topics(admin, topic_specs(isolated_settings))
    finally:
        admin.close()
    return isolated_settings
