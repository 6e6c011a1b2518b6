"""Shared fixtures.

Unit tests need nothing. Integration tests (marked ``integration``) use the real local stack
that ``make test`` starts (``mailroom stack up``); each test gets its own topic prefix and its
own PostgreSQL schema so tests cannot interfere with each other or with the demo.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from mailroom import settings as settings_module
from mailroom.settings import Settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """The settings the test run was started with (environment and optional TOML file)."""
    return settings_module.load()


@pytest.fixture
def unique_name() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def isolated_settings(base_settings: Settings, unique_name: str) -> Settings:
    """Settings whose topics are this test's own (prefix ``test.<unique>``)."""
    return base_settings.replace(topic_prefix=f"test.{unique_name}")


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared real-world corpus; tests that need it skip, saying so, when it is not set."""
    path = os.environ.get("MAILROOM_CORPUS")
    if not path:
        pytest.skip("MAILROOM_CORPUS is not set: corpus tests skipped (CI sets it)")
    return Path(path)
