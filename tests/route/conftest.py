"""Fixtures for route's integration tests: a fresh, migrated PostgreSQL schema per test."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from pipeline_testing import own_schema

from mailroom.db import connect
from mailroom.settings import Settings


@pytest.fixture
def route_db_settings(isolated_settings: Settings, unique_name: str) -> Iterator[Settings]:
    with own_schema(isolated_settings, f"route_{unique_name}") as settings:
        yield settings


@pytest.fixture
def route_db(route_db_settings: Settings) -> Iterator[psycopg.Connection]:
    with connect(route_db_settings) as conn:
        yield conn
