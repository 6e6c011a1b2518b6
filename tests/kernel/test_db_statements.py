"""Statements on cursors kept per connection (``mailroom.db.statements``): one cursor per
statement text, reused, so psycopg looks each parameter's dumper up once, not per call."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from mailroom.db import statements

pytestmark = pytest.mark.integration  # the local stack's PostgreSQL

READ = "SELECT %s::int + 1"
OTHER = "SELECT %s::text || '!'"


def test_a_statement_keeps_its_cursor_and_its_dumpers(db_conn: psycopg.Connection[Any]) -> None:
    first = statements.run(db_conn, READ, (1,))
    assert first.fetchone() == (2,)
    again = statements.run(db_conn, READ, (41,))
    assert again is first  # the same cursor: its adapters learnt int's dumper once
    assert again.fetchone() == (42,)
    assert again is not db_conn.execute(READ, (1,))  # what Connection.execute does instead


def test_each_statement_has_its_own_cursor(db_conn: psycopg.Connection[Any]) -> None:
    a = statements.run(db_conn, READ, (1,))
    b = statements.run(db_conn, OTHER, ("x",))
    assert a is not b
    assert a.fetchone() == (2,)  # not overwritten by the other statement's result
    assert b.fetchone() == ("x!",)


def test_in_pipeline_mode_writes_and_reads(db_conn: psycopg.Connection[Any]) -> None:
    db_conn.execute("CREATE TEMP TABLE kept_cursor_check (n int)")
    insert = "INSERT INTO kept_cursor_check (n) VALUES (%s)"
    with db_conn.pipeline():
        for n in range(50):
            statements.run(db_conn, insert, (n,))  # sent without waiting, one cursor
        got = statements.run(db_conn, "SELECT count(*), sum(n) FROM kept_cursor_check").fetchone()
    assert got == (50, sum(range(50)))


def test_a_new_connection_gets_new_cursors(base_settings: Any, db_schema: str) -> None:
    from mailroom.db import connect

    with connect(base_settings, schema=db_schema) as conn:
        first = statements.run(conn, READ, (1,))
    with connect(base_settings, schema=db_schema) as conn:
        second = statements.run(conn, READ, (2,))
        assert second is not first and not second.closed
        assert second.fetchone() == (3,)


def test_statement_texts_built_on_the_fly_do_not_pile_up(
    db_conn: psycopg.Connection[Any],
) -> None:
    for n in range(statements.MAX_KEPT * 3):
        assert statements.run(db_conn, f"SELECT {n}").fetchone() == (n,)
    assert len(statements.kept(db_conn)) <= statements.MAX_KEPT


def test_a_new_cursor_factory_is_used(db_conn: psycopg.Connection[Any]) -> None:
    """A connection given another cursor factory (a test recording what is sent) gets cursors of
    it, the kept ones included."""
    statements.run(db_conn, READ, (1,)).fetchone()

    class Recording(psycopg.Cursor[Any]):
        pass

    db_conn.cursor_factory = Recording
    try:
        cursor = statements.run(db_conn, READ, (1,))
        assert isinstance(cursor, Recording) and cursor.fetchone() == (2,)
    finally:
        db_conn.cursor_factory = psycopg.Cursor


def test_a_closed_connection_is_not_kept_alive(base_settings: Any, db_schema: str) -> None:
    """The kept cursors refer to their connection: kept anywhere but on it, they would keep
    every connection persist ever opened (one per database outage) alive."""
    import gc
    import weakref

    from mailroom.db import connect

    with connect(base_settings, schema=db_schema) as conn:
        assert statements.run(conn, READ, (1,)).fetchone() == (2,)
        gone = weakref.ref(conn)
    del conn
    gc.collect()
    assert gone() is None
