"""Statements run once an email on a cursor of their own, kept with the connection.

``Connection.execute`` makes a new cursor for every call, and a new cursor knows no dumpers:
psycopg looks up the dumper of each parameter's type again (an email activity's row has 25
parameters) and forgets them when the cursor goes. On a cursor kept for the statement, the
lookups are made once. Inserting 3,000 email activities in pipeline mode: ~85–100 µs of
Python a row with ``Connection.execute``, ~40–55 µs on a kept cursor (PostgreSQL's side the
same) — for persist, whose row insert is most of its statements, ~6% of its CPU an email.

One cursor per statement text, so the result of one statement is never overwritten by
another's. Read what :func:`run` returns before running the same statement again (persist's
reads fetch at once; its writes read nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

import psycopg

#: At most this many statements kept per connection (the hot ones are a handful; a caller
#: building statement texts on the fly must not grow it for ever).
MAX_KEPT = 64

_KEPT: WeakKeyDictionary[psycopg.Connection[Any], dict[str, psycopg.Cursor[Any]]] = (
    WeakKeyDictionary())


def run(conn: psycopg.Connection[Any], query: str,
        params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
    """``conn.execute(query, params)``, on the cursor kept for ``query`` on ``conn``."""
    kept = _KEPT.get(conn)
    if kept is None:
        kept = _KEPT[conn] = {}
    cursor = kept.get(query)
    # A connection given another cursor factory since (a test recording statements) gets it.
    if cursor is None or cursor.closed or type(cursor) is not conn.cursor_factory:
        if len(kept) >= MAX_KEPT:
            kept.clear()
        cursor = kept[query] = conn.cursor()
    return cursor.execute(query, params)
