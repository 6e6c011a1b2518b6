"""Fixtures for persist's tests: a fresh, migrated PostgreSQL schema per test (real database,
never a fake), reference records the plans name, and the codec."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from pipeline_testing import REFERENCE_SQL, own_schema

from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.settings import Settings


@pytest.fixture
def persist_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    with own_schema(isolated_settings, f"persist_{unique_name}",
                    prepare=lambda conn: conn.execute(REFERENCE_SQL)) as settings:
        yield settings


@pytest.fixture
def db(persist_settings: Settings) -> Iterator[psycopg.Connection]:
    with connect(persist_settings) as conn:
        yield conn


@pytest.fixture(scope="session")
def codec(base_settings: Settings) -> Codec:
    return Codec.from_settings(base_settings)
