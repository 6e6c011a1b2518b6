"""Each request to the dashboard borrows one pooled connection, whatever its page asks for: the
session check, the page's queries and the email's trace share it (two or three borrows a
request, each a wait in the pool's queue under load, before)."""

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
