"""Fixtures for the dashboard's tests: a real server on localhost over this test's own topics,
database schema and Dovecot user (never a fake). The server logs in to PostgreSQL as a login
user in the dashboard's group role only (migration 0065), as a deployment's would: every page
and button the tests use works with the dashboard's grants, and nothing more."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from psycopg.conninfo import make_conninfo
from webseed import Running

from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.settings import Settings


@pytest.fixture
def web_settings(isolated_settings: Settings, db_schema: str) -> Settings:
    """This test's topics (2 partitions each: enough, and quick to create) and schema; the
    schema goes into the DSN so every connection the server opens lands in it."""
    return isolated_settings.replace(
        database_url=f"{isolated_settings.dsn} options='-csearch_path={db_schema}'",
        topic_partitions=2,
    )


@pytest.fixture
def topics(web_settings: Settings) -> Iterator[Settings]:
    from mailroom.kafka import make_admin
    from mailroom.topics import ensure_topics, topic_specs

    specs = topic_specs(web_settings)
    admin = make_admin(web_settings)
    try:
        ensure_topics(admin, specs)
        yield web_settings
    finally:
        try:
            admin.delete_topics([s.name for s in specs])
        finally:
            admin.close()


@pytest.fixture(scope="session")
def codec(base_settings: Settings) -> Codec:
    return Codec.from_settings(base_settings)


@pytest.fixture
def dashboard(topics: Settings) -> Iterator[Running]:
    """``mailroom web`` in-process on a free port (the same server objects the command uses),
    with one account per role."""
    with serve(topics) as running:
        yield running


@contextmanager
def web_login(settings: Settings) -> Iterator[Settings]:
    """Settings whose connections log in as a fresh login user in the ``mailroom_web`` group
    (trust auth on the local stack's loopback), dropped afterwards. The tests' schemas are
    migrated with the default role prefix."""
    login = f"mailroom_web_t{uuid.uuid4().hex[:10]}"
    with connect(settings, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {login} LOGIN IN ROLE mailroom_web")
    try:
        yield settings.replace(database_url=make_conninfo(settings.dsn, user=login))
    finally:
        with connect(settings, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {login}")


@contextmanager
def serve(settings: Settings, **server_options: Any) -> Iterator[Running]:
    """The server as the dashboard's role; ``Running.settings`` stay the schema owner's, for
    seeding and checking what the server did."""
    with web_login(settings) as as_web, _serve(settings, as_web, **server_options) as running:
        yield running


@contextmanager
def _serve(settings: Settings, as_web: Settings, **server_options: Any) -> Iterator[Running]:
    from mailroom.console.web import accounts
    from mailroom.console.web.app import Dashboard
    from mailroom.console.web.server import DashboardServer

    app = Dashboard(as_web)
    logins = {}
    with connect(settings) as db:
        for role in accounts.Role:
            name, password = f"{role.name}-{uuid.uuid4().hex[:6]}", "pw-" + uuid.uuid4().hex
            accounts.add(db, app.passwords, name, role, password)
            logins[role.name] = (name, password)
        db.commit()
    server = DashboardServer(app, "127.0.0.1", 0, **server_options)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield Running(server.url.rstrip("/"), logins, settings, app)
    finally:
        server.shutdown()
        thread.join(10)
        app.close()


@pytest.fixture
def mail_user(base_settings: Settings) -> tuple[str, str]:
    """A fresh Dovecot user (name, password) on the local stack."""
    from mailroom.console.stack import dovecot

    name = "w" + uuid.uuid4().hex[:10]
    password = "pw-" + uuid.uuid4().hex[:8]
    dovecot.add_user(base_settings, name, password)
    return name, password
