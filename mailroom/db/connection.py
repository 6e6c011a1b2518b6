"""Opening PostgreSQL connections: the one place that turns settings into a connection.

There is no pool or module-level connection here on purpose: a caller opens a connection with
:func:`connect` and passes it down, so every query's connection (and transaction) is visible in
the signature of the code that runs it.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from mailroom.errors import ConfigError, TransientError
from mailroom.settings import Settings

# Plain lower-case identifiers only: the name goes into the startup ``options`` string, where
# quoting rules differ from SQL's; a name that needs no quoting sidesteps them entirely.
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DatabaseUnavailable(TransientError):  # noqa: N818 - the name says what it is
    """PostgreSQL could not be reached or refused the login; worth retrying later."""


def check_schema_name(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ConfigError(
            f"schema name {schema!r} is not a plain lower-case identifier ([a-z_][a-z0-9_]*)"
        )
    return schema


def connect(
    settings: Settings, *, schema: str | None = None, autocommit: bool = False
) -> psycopg.Connection:
    """Open a connection to ``settings.dsn``.

    ``schema`` makes that schema the *only* one in ``search_path`` (``pg_catalog`` is always
    searched implicitly): tables are created in it and unqualified names resolve in it, so an
    integration test working in its own schema can neither see nor touch the demo's tables in
    ``public``. It is set as a startup option rather than with ``SET``, because a ``SET`` inside
    a transaction that later rolls back would silently fall back to the default path.
    """
    params = conninfo_to_dict(settings.dsn)
    params.setdefault("application_name", "mailroom")
    if schema is not None:
        option = f"-c search_path={check_schema_name(schema)}"
        params["options"] = f"{params['options']} {option}" if params.get("options") else option
    try:
        return psycopg.connect(autocommit=autocommit, **params)
    except psycopg.OperationalError as exc:
        where = f"{params.get('host', 'localhost')}:{params.get('port', '5432')}"
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {where} database {params.get('dbname', '?')!r}: "
            f"{str(exc).strip()} (is the stack up? `mailroom stack status`; "
            "or set MAILROOM_DATABASE_URL)"
        ) from exc
