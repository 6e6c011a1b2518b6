"""A stage process started while PostgreSQL is away waits for it (``outage.connected``)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from mailroom.db.connection import DatabaseUnavailable
from mailroom.db.outage import connected


def test_connect_is_retried_with_a_growing_wait_until_the_database_answers() -> None:
    tries: list[int] = []
    waits: list[float] = []
    conn: Any = object()

    def connect() -> Any:
        tries.append(1)
        if len(tries) == 1:
            raise DatabaseUnavailable("connection refused")
        if len(tries) == 2:
            raise psycopg.OperationalError("the database system is starting up")
        return conn

    assert connected(connect, "start of ingest", sleep=waits.append) is conn
    assert len(tries) == 3
    assert waits == [0.5, 1.0]


def test_other_errors_are_not_an_outage() -> None:
    def connect() -> Any:
        raise ValueError("a bad connection string is no outage")

    with pytest.raises(ValueError):
        connected(connect, "start", sleep=lambda _: None)
