"""Fixtures for the operations tests: own topics (as `mailroom topics create` makes them, two
partitions each), own migrated database schema, short group timeouts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pipeline_testing import own_schema, own_topics

from mailroom.settings import Settings


@pytest.fixture
def ops_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    with own_schema(
        isolated_settings, f"ops_{unique_name}",
        topic_partitions=2, kafka_session_timeout_ms=6000, kafka_heartbeat_interval_ms=2000,
    ) as settings, own_topics(settings):
        yield settings
