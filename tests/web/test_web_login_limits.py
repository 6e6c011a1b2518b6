"""Login limits shared by every replica (``web_login_failures`` in PostgreSQL): failures made
at one dashboard count at another, many attempts fired at once at two replicas get exactly the
limit, and the counts forget after their window and stay bounded."""

from __future__ import annotations

import threading

import psycopg
import pytest
from conftest import serve
from test_web_http import Client

from mailroom.console.web.throttle import LoginThrottle
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def test_two_replicas_count_the_same_failures(topics: Settings) -> None:
    with serve(topics) as first, serve(topics) as second:  # two processes' worth, one database
        name, password = first.logins["viewer"]
        for n in range(5):  # 3 at one replica, 2 at the other: under the limit at each
            assert Client((first, second)[n % 2].url).login(name, "wrong password")[0] == 403
        for running in (first, second):
            status, _, page, _ = Client(running.url).login(name, password)
            assert status == 429 and "Too many failed logins" in page

        # Twelve guesses fired at once, at both replicas: exactly the limit gets a password
        # check, every other is refused before hashing (each attempt holds its place in the
        # count while its hash runs).
        name, _ = first.logins["operator"]
        answers: list[int] = []
        lock = threading.Lock()

        def guess(url: str) -> None:
            status = Client(url).login(name, "wrong password")[0]
            with lock:
                answers.append(status)

        threads = [threading.Thread(target=guess, args=((first, second)[n % 2].url,))
                   for n in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(answers) == [403] * 5 + [429] * 7


def test_login_limits_forget_after_their_window(db_conn: psycopg.Connection) -> None:
    throttle = LoginThrottle(per_account=2, per_address=3, window_s=60)
    assert not throttle.attempt(db_conn, "ann", "a1").refused
    assert not throttle.attempt(db_conn, "ann", "a2").refused  # two failures for ann now
    refused = throttle.attempt(db_conn, "ann", "a3")
    assert refused.refused and 0 < refused.wait_s <= 60
    assert db_conn.execute("SELECT count(*) FROM web_login_failures WHERE key = 'a3'"
                           ).fetchone() == (0,)  # a refused attempt writes nothing
    # The address's limit, across accounts.
    for name in ("bob", "cat"):
        assert not throttle.attempt(db_conn, name, "a1").refused
    assert throttle.attempt(db_conn, "dan", "a1").refused

    # A success takes its own attempt back and clears the account's failures, not the
    # address's.
    ok = throttle.attempt(db_conn, "eve", "a9")
    throttle.attempt(db_conn, "eve", "a8")
    throttle.succeeded(db_conn, ok)
    assert db_conn.execute("SELECT kind, key FROM web_login_failures WHERE key IN "
                           "('eve', 'a9', 'a8') ORDER BY kind").fetchall() == [
        ("address", "a8")]

    # The window passes (the rows made older, not the test slower): all may try again, and
    # the next failure written deletes what has aged out.
    db_conn.execute("UPDATE web_login_failures SET at = at - interval '61 seconds'")
    assert not throttle.attempt(db_conn, "ann", "a1").refused
    assert db_conn.execute("SELECT kind, key FROM web_login_failures ORDER BY kind"
                           ).fetchall() == [("account", "ann"), ("address", "a1")]
