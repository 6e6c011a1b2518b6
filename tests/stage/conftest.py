"""Fixtures for the stage runner's integration tests: own topics, own database schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pipeline_testing import own_schema, own_topics

from mailroom.settings import Settings

TOPICS = {"in": 2, "out": 1, "trace": 1, "dlq": 1}


@pytest.fixture
def stage_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    """Own topic prefix (topics created), own migrated schema, short group timeouts."""
    with own_schema(
        isolated_settings, f"stage_{unique_name}",
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=2000,
        stage_isolation="inline",
        stage_retry_backoff_ms=50,
        stage_retry_deadline_ms=3000,
        stage_budget_ms=2000,
    ) as settings, own_topics(settings, TOPICS):
        yield settings
