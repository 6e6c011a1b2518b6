"""The deployments give each stage its PostgreSQL login apart from the connection string:
MAILROOM_DATABASE_URL names server, database and TLS (shared, not secret), PGUSER/PGPASSWORD come
from the stage's Secret or credentials file. This checks, against the local stack's real
PostgreSQL, that Mailroom's connections take the login from there."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mailroom.db import DatabaseUnavailable, connect
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

NOBODY = "mailroom_no_such_login"


def without_login(settings: Settings) -> tuple[Settings, str]:
    """The settings with user and password taken out of the connection string, and the user."""
    params = conninfo_to_dict(settings.dsn)
    user = str(params.pop("user"))
    params.pop("password", None)
    return settings.replace(database_url=make_conninfo(**params)), user


def test_the_login_comes_from_pguser_and_pgpassword(
    base_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, user = without_login(base_settings)
    monkeypatch.setenv("PGUSER", user)
    monkeypatch.setenv("PGPASSWORD", "unused-by-trust-but-passed")
    with connect(settings) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (user,)


def test_another_pguser_is_another_login(
    base_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = without_login(base_settings)
    monkeypatch.setenv("PGUSER", NOBODY)
    with pytest.raises(DatabaseUnavailable, match=NOBODY):
        connect(settings)
