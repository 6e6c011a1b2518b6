"""Fixtures for the operations tests: own topics (as `mailroom topics create` makes them, two
partitions each), own migrated database schema, short group timeouts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom import kafka
from mailroom.db import connect
from mailroom.db.migrate import migrate
from mailroom.settings import Settings
from mailroom.topics import ensure_topics, topic_specs

# The persist tests' plan builders are reused here (tests import helpers by folder).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "persist"))


@pytest.fixture
def ops_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    try:
        connect(isolated_settings).close()
    except Exception:  # noqa: BLE001 - any failure means: no local stack here
        pytest.skip("PostgreSQL of the local stack is not reachable (mailroom stack up)")
    schema = f"ops_{unique_name}"
    with connect(isolated_settings, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    settings = isolated_settings.replace(
        # In the DSN, so subprocesses given MAILROOM_DATABASE_URL use the schema too.
        database_url=f"{isolated_settings.dsn} options='-csearch_path={schema}'",
        topic_partitions=2, kafka_session_timeout_ms=6000, kafka_heartbeat_interval_ms=2000,
    )
    with connect(settings) as conn:
        migrate(conn)
    admin = kafka.make_admin(settings)
    try:
        ensure_topics(admin, topic_specs(settings))
        yield settings
    finally:
        admin.delete_topics([s.name for s in topic_specs(settings)])
        admin.close()
        with connect(isolated_settings, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
