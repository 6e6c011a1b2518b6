"""Statements run once an email on a cursor of their own, kept with the connection.

``Connection.execute`` makes a new cursor for every call, and a new cursor knows no dumpers:
psycopg looks up the dumper of each parameter's type again (an email activity's row has 25
parameters) and forgets them when the cursor goes. On a cursor kept for the statement, the
lookups are made once. Inserting 3,000 email activities in pipeline mode: ~85–100 µs of
Python a row with ``Connection.execute``, ~40–55 µs on a kept cursor (PostgreSQL's side the
same); persist's apply, ~20 µs less an email on the bench's mail and ~80 µs less a plan with a
case and a queue item (docs/performance.md, round ten).

One cursor per statement text, so the result of one statement is never overwritten by
another's. Read what :func:`run` returns before running the same statement again (persist's
reads fetch at once; its writes read nothing).

The cursors live on the connection itself (an attribute): a cursor refers to its connection,
so a table of them kept here, even keyed weakly, would keep every connection alive for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

#: At most this many statements kept per connection (the hot ones are a handful; a caller
#: building statement texts on the fly must not grow it for ever).
MAX_KEPT = 64

_ATTRIBUTE = "_mailroom_kept_cursors"


def kept(conn: psycopg.Connection[Any]) -> dict[str, psycopg.Cursor[Any]]:
    """The cursors kept on ``conn``, by statement text."""
    cursors: dict[str, psycopg.Cursor[Any]] | None = getattr(conn, _ATTRIBUTE, None)
    if cursors is None:
        cursors = {}
        setattr(conn, _ATTRIBUTE, cursors)
    return cursors


def run(conn: psycopg.Connection[Any], query: str,
        params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
    """``conn.execute(query, params)``, on the cursor kept for ``query`` on ``conn``."""
    cursors = kept(conn)
    cursor = cursors.get(query)
    # A connection given another cursor factory since (a test recording statements) gets it.
    if cursor is None or cursor.closed or type(cursor) is not conn.cursor_factory:
        if len(cursors) >= MAX_KEPT:
            cursors.clear()
        cursor = cursors[query] = conn.cursor()
    return cursor.execute(query, params)
