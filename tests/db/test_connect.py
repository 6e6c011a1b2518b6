"""Opening connections: schema isolation and a clear error when PostgreSQL is not there."""

from __future__ import annotations

import socket

import pytest

from mailroom.db import DatabaseUnavailable, check_schema_name, connect
from mailroom.errors import ConfigError, TransientError


def test_schema_names_must_be_plain_identifiers() -> None:
    assert check_schema_name("test_t0a1b2") == "test_t0a1b2"
    for bad in ("Test", "a b", "x;drop", "", "a-b", "1abc"):
        with pytest.raises(ConfigError):
            check_schema_name(bad)


def test_unreachable_database_is_a_transient_error_saying_where(base_settings) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = base_settings.replace(
        database_url=f"host=127.0.0.1 port={port} dbname=mailroom user=mailroom connect_timeout=2"
    )
    with pytest.raises(DatabaseUnavailable, match=f"127.0.0.1:{port}") as info:
        connect(settings)
    assert isinstance(info.value, TransientError)


@pytest.mark.integration
def test_schema_option_survives_a_rolled_back_transaction(base_settings, db_schema) -> None:
    with connect(base_settings, schema=db_schema) as conn:
        conn.rollback()
        assert conn.execute("SELECT current_schema()").fetchone()[0] == db_schema
        name = conn.execute("SHOW application_name").fetchone()[0]
        assert name == "mailroom"
