"""Shared fixtures.

Unit tests need nothing. Integration tests (marked ``integration``) use the real local stack
that ``make test`` starts (``mailroom stack up``); each test gets its own topic prefix and its
own PostgreSQL schema so tests cannot interfere with each other or with the demo.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest

from mailroom import kafka
from mailroom import settings as settings_module
from mailroom.settings import Settings

REPO = Path(__file__).resolve().parent.parent

# As in mailroom.log: kafka-python's "task ran for 0.1 s" warnings are noise on a busy machine,
# and from a client thread that outlives a test they end as "I/O operation on closed file".
logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """The settings the test run was started with (environment and optional TOML file)."""
    return settings_module.load()


#: Every test's unique name in this run: the topics under ``test.<name>.`` go at the end.
_NAMES_USED: list[str] = []


@pytest.fixture
def unique_name() -> str:
    name = "t" + uuid.uuid4().hex[:10]
    _NAMES_USED.append(name)
    return name


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete the topics this run's tests left on the local broker. Stages create their topics
    themselves and many tests never delete them; a broker holds files open for every partition,
    and the partitions of a few runs once kept the local broker from starting at all (too many
    open files). Only this run's names: another run on the same broker keeps its topics."""
    if not _NAMES_USED:
        return
    prefixes = tuple(f"test.{name}." for name in _NAMES_USED)
    try:
        admin = kafka.make_admin(settings_module.load())
    except Exception:  # noqa: BLE001 - no broker (unit tests only): nothing was created
        return
    try:
        ours = [t for t in admin.list_topics() if t.startswith(prefixes)]
        for i in range(0, len(ours), 200):
            admin.delete_topics(ours[i:i + 200])
    except Exception as exc:  # noqa: BLE001 - cleaning up must not fail the run
        logging.getLogger(__name__).warning("test topics not deleted: %s", exc)
    finally:
        admin.close()


@pytest.fixture
def isolated_settings(base_settings: Settings, unique_name: str) -> Settings:
    """Settings whose topics are this test's own (prefix ``test.<unique>``)."""
    return base_settings.replace(topic_prefix=f"test.{unique_name}")


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared real-world corpus; tests that need it skip, saying so, when it is not set."""
    path = os.environ.get("MAILROOM_CORPUS")
    if not path:
        pytest.skip("MAILROOM_CORPUS is not set: corpus tests skipped (CI sets it)")
    return Path(path)


# --- PostgreSQL: one migrated schema per test (mailroom.db) -----------------------------------


@pytest.fixture
def db_schema(base_settings: Settings, unique_name: str):
    """A fresh schema with every migration applied, dropped after the test.

    Connect to it with ``mailroom.db.connect(settings, schema=db_schema)``: it is then the only
    schema in ``search_path``, so the test cannot see or change the demo's tables in ``public``.
    """
    from psycopg import sql

    from mailroom.db import connect
    from mailroom.db.migrate import migrate

    schema = f"test_{unique_name}"
    with connect(base_settings, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            with connect(base_settings, schema=schema, autocommit=True) as conn:
                migrate(conn)
            yield schema
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def db_conn(base_settings: Settings, db_schema: str):
    """An autocommit connection to this test's own migrated schema, closed after the test."""
    from mailroom.db import connect

    with connect(base_settings, schema=db_schema, autocommit=True) as conn:
        yield conn
