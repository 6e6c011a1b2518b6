"""Fixtures for the stage runner's integration tests: own topics, own database schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka.admin import NewTopic

from mailroom import kafka
from mailroom.db import connect
from mailroom.db.migrate import migrate
from mailroom.settings import Settings

TOPICS = {"in": 2, "out": 1, "trace": 1, "dlq": 1}


@pytest.fixture
def stage_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    """Own topic prefix (topics created), own migrated schema, short group timeouts."""
    try:
        connect(isolated_settings).close()
    except Exception:  # noqa: BLE001 - any failure means: no local stack here
        pytest.skip("PostgreSQL of the local stack is not reachable (mailroom stack up)")
    schema = f"stage_{unique_name}"
    with connect(isolated_settings, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    settings = isolated_settings.replace(
        # In the DSN, so subprocesses given MAILROOM_DATABASE_URL use the schema too.
        database_url=f"{isolated_settings.dsn} options='-csearch_path={schema}'",
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=2000,
        stage_isolation="inline",
        stage_retry_backoff_ms=50,
        stage_retry_deadline_ms=3000,
        stage_budget_ms=2000,
    )
    with connect(settings) as conn:
        migrate(conn)
    admin = kafka.make_admin(settings)
    try:
        admin.create_topics(
            [NewTopic(settings.topic(name), n, 1) for name, n in TOPICS.items()]
        )
        yield settings
    finally:
        admin.delete_topics([settings.topic(name) for name in TOPICS])
        admin.close()
        with connect(isolated_settings, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
