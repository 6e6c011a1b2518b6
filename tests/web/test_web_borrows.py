"""Each request to the dashboard borrows one pooled connection, whatever its page asks for: the
session check, the page's queries and the email's trace share it (two or three borrows a
request, each a wait in the pool's queue under load, before). A connection PostgreSQL ended
while it waited in the pool answers 503, not 500, and is not lent again."""

from __future__ import annotations

from typing import Any

import pytest
import webseed
from test_web_http import Client
from webseed import Running

from mailroom.codec import Codec
from mailroom.db import connect

pytestmark = pytest.mark.integration


def test_a_page_borrows_one_connection(dashboard: Running, codec: Codec,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with connect(dashboard.settings) as db:
        seeded = webseed.activity(db, codec)
    client = Client(dashboard.url)
    assert client.login(*dashboard.logins["viewer"])[0] == 303
    pool = dashboard.app.pool
    borrows: list[Any] = []
    take = pool._take

    def counted() -> Any:
        borrows.append(1)
        return take()

    monkeypatch.setattr(pool, "_take", counted)
    for path in ("/emails", f"/emails/{seeded.activity_id}", f"/cases/{seeded.case_id}"):
        borrows.clear()
        status, _, page, _ = client.request("GET", path)
        assert status == 200, page
        assert len(borrows) == 1, path
    borrows.clear()
    assert client.request("GET", "/static/mailroom.css")[0] == 200
    assert borrows == []  # a request that asks for none takes none


def test_a_connection_postgresql_ended_answers_503_then_a_fresh_one_serves(
        dashboard: Running) -> None:
    client = Client(dashboard.url)
    assert client.login(*dashboard.logins["viewer"])[0] == 303
    pool = dashboard.app.pool
    pool.check_after_s = 3600.0  # lent without the check, as one idle under check_after_s is
    with pool.connection(autocommit=True) as conn:  # the next to be lent: the last returned
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    # As a restart would; the dashboard's own role may end its own role's processes.
    with connect(dashboard.app.settings, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    status, _, page, _ = client.request("GET", "/emails")
    assert status == 503, page  # not a 500: PostgreSQL went away, try again
    assert client.request("GET", "/emails")[0] == 200  # the dead one was not lent again
