"""PostgreSQL access: connections, the migration runner and the reference-record import.

Connections are opened with :func:`connect` and passed in explicitly; nothing here keeps a
global connection or pool.
"""

from mailroom.db.connection import DatabaseUnavailable, check_schema_name, connect

__all__ = ["DatabaseUnavailable", "check_schema_name", "connect"]
