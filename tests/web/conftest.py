"""Fixtures for the dashboard's tests: a real server on localhost over this test's own topics,
database schema and Dovecot user (never a fake)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from webseed import Running

from mailroom.codec import Codec
from mailroom.settings import Settings


@pytest.fixture
def web_settings(isolated_settings: Settings, db_schema: str) -> Settings:
    """This test's topics (2 partitions each: enough, and quick to create) and schema; the
    schema goes into the DSN so every connection the server opens lands in it."""
    return isolated_settings.replace(
        database_url=f"{isolated_settings.dsn} options='-csearch_path={db_schema}'",
        topic_partitions=2, web_secret="s3cret-" + uuid.uuid4().hex[:8],
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
    """``mailroom web`` in-process on a free port (the same server objects the command uses)."""
    from mailroom.web.app import Dashboard, DashboardServer

    app = Dashboard(topics, topics.web_secret)
    server = DashboardServer(("127.0.0.1", 0), app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield Running(server.url.rstrip("/"), topics.web_secret, topics)
    finally:
        server.shutdown()
        server.server_close()
        app.close()
        thread.join(5)


@pytest.fixture
def mail_user(base_settings: Settings) -> tuple[str, str]:
    """A fresh Dovecot user (name, password) on the local stack."""
    from mailroom.stack import dovecot

    name = "w" + uuid.uuid4().hex[:10]
    password = "pw-" + uuid.uuid4().hex[:8]
    dovecot.add_user(base_settings, name, password)
    return name, password
