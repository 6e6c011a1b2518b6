"""The dashboard's connection pool on the real PostgreSQL: connections are reused, committed or
rolled back like ``with connect(...)``, a dead one is never lent again, at most ``size`` are
lent at once, a thread that holds one and asks again is not made to wait for itself, and a
request borrows once for all its blocks. The chart memo draws once per snapshot; the stage
history is drawn with each read of its samples, behind the page."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest

from mailroom.console.web.data.history import SampleCache
from mailroom.console.web.data.memo import Memo
from mailroom.console.web.pool import ConnectionPool
from mailroom.db import connect
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(base_settings: Settings, db_schema: str) -> Settings:
    return base_settings.replace(
        database_url=f"{base_settings.dsn} options='-csearch_path={db_schema}'")


def pid(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])


def test_connections_are_reused_and_end_like_connect(settings: Settings) -> None:
    pool = ConnectionPool(settings, size=2, check_after_s=0)
    try:
        with pool.connection() as conn:
            first = pid(conn)
            conn.execute("INSERT INTO web_audit (actor, action) VALUES ('t', 'kept')")
        with pytest.raises(RuntimeError), pool.connection() as conn:
            assert pid(conn) == first  # the same server process: no new login
            conn.execute("INSERT INTO web_audit (actor, action) VALUES ('t', 'undone')")
            raise RuntimeError("the page failed")
        with pool.connection(autocommit=True) as conn:
            assert pid(conn) == first
            assert conn.execute("SELECT action FROM web_audit").fetchall() == [("kept",)]
            # PostgreSQL ends it while it waits in the pool (a restart, an admin).
            with connect(settings, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        with pool.connection() as conn:  # checked before it is lent: a new one instead
            assert pid(conn) != first
    finally:
        pool.close()


def test_at_most_size_lent_and_no_thread_waits_for_itself(settings: Settings) -> None:
    pool = ConnectionPool(settings, size=1)
    try:
        with pool.connection() as outer, pool.connection() as inner:  # nested: no deadlock
            assert pid(inner) != pid(outer)
        held, release, got = threading.Event(), threading.Event(), threading.Event()

        def holder() -> None:
            with pool.connection():
                held.set()
                release.wait(60)

        def waiter() -> None:
            with pool.connection():
                got.set()

        a = threading.Thread(target=holder)
        a.start()
        assert held.wait(60)
        b = threading.Thread(target=waiter)
        b.start()
        assert not got.is_set()  # the only connection is lent: it cannot have one
        release.set()
        a.join(60)
        b.join(60)
        assert got.is_set()
    finally:
        pool.close()


def test_a_request_borrows_once_for_all_its_blocks(settings: Settings) -> None:
    pool = ConnectionPool(settings, size=1)
    try:
        with pool.request():
            with pool.connection(autocommit=True) as conn:  # the session check
                first = pid(conn)
            # Between its blocks the request keeps its slot: no other thread can borrow.
            assert not pool._slots.acquire(blocking=False)
            with pool.connection() as conn:  # the page: the same connection, its own commit
                assert pid(conn) == first
                conn.execute("INSERT INTO web_audit (actor, action) VALUES ('t', 'kept')")
            with pytest.raises(RuntimeError), pool.connection() as conn:
                assert pid(conn) == first
                conn.execute("INSERT INTO web_audit (actor, action) VALUES ('t', 'undone')")
                raise RuntimeError("the page failed")
            with pool.connection(autocommit=True) as outer, pool.connection() as inner:
                assert pid(outer) == first
                assert pid(inner) != first  # nested: another, as outside a request
            with pool.connection(autocommit=True) as conn:  # PostgreSQL ends it mid-request
                with connect(settings, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (first,))
                with pytest.raises(psycopg.OperationalError):
                    conn.execute("SELECT 1")
            with pool.connection(autocommit=True) as conn:  # the next block gets a new one
                second = pid(conn)
                assert second != first
                assert conn.execute("SELECT action FROM web_audit").fetchall() == [("kept",)]
        with pool.connection(autocommit=True) as conn:  # returned at the request's end
            assert pid(conn) == second
    finally:
        pool.close()


def test_memo_computes_once_per_source() -> None:
    memo: Memo[str] = Memo()
    calls: list[str] = []

    def draw(text: str) -> str:
        calls.append(text)
        return text.upper()

    first, second = {"samples": 1}, {"samples": 2}
    assert memo.get("day", first, lambda: draw("a")) == "A"
    assert memo.get("day", first, lambda: draw("b")) == "A"  # same snapshot: kept
    assert memo.get("hour", first, lambda: draw("c")) == "C"  # another chart
    assert memo.get("day", second, lambda: draw("d")) == "D"  # a new snapshot: drawn again
    assert calls == ["a", "c", "d"]


def test_the_stage_history_is_drawn_behind_the_page(settings: Settings) -> None:
    pool = ConnectionPool(settings)
    drawn_on: list[str] = []

    def draw(found: dict) -> str:
        drawn_on.append(threading.current_thread().name)
        return f"charts {len(drawn_on)}"

    # Every read is past min_interval_s, none past stale_s: read anew behind the page.
    cache = SampleCache(pool, min_interval_s=0.0, stale_s=3600.0)
    try:
        viewer = threading.current_thread().name
        assert cache.drawn(timedelta(hours=1), draw) == "charts 1"
        assert drawn_on == [viewer]  # nothing drawn yet: the first viewer waits for it
        assert cache.drawn(timedelta(hours=1), draw) == "charts 1"  # not drawn for this one
        deadline = time.monotonic() + 60
        while len(drawn_on) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert drawn_on[1] != viewer  # drawn with the read, on the refreshing thread
    finally:
        pool.close()
