"""Keeping secrets out of what Mailroom shows: ``mailroom config``, logs, doctor, error messages.

Two tools, used wherever text leaves a process for a human:

* :func:`dsn_without_password` — a PostgreSQL connection string (libpq ``key=value`` or a
  ``postgresql://`` URI) with its password removed, for showing *where* Mailroom connects;
* :class:`Redactor` — replaces every secret value of the settings (``Settings.secret_fields``,
  the password inside ``database_url``) and any ``password=``/URI password written in the text
  with ``***``. The CLI's error output and every log line go through one
  (:func:`mailroom.log.configure`), so a library's exception that echoes a DSN cannot leak it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mailroom.settings import Settings

MASK = "***"
# key=value passwords (libpq conninfo, quoted or not) and user:password@ in URIs
_KV_PASSWORD = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'&;]+)")
_URI_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@\s]*)(@)")
_MIN_SECRET_CHARS = 4  # shorter values are not replaced: they would mangle ordinary words


def dsn_without_password(dsn: str) -> str:
    """``dsn`` without its password (also a URI's ``user:password@`` or ``?password=``)."""
    if not dsn:
        return dsn
    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - unparseable: mask by pattern, never show it raw
        return redact_patterns(dsn)
    if "password" not in params:
        return redact_patterns(dsn)  # as written (a URI stays a URI)
    params.pop("password")
    return make_conninfo("", **params)


def redact_patterns(text: str) -> str:
    """Mask ``password=...`` and URI passwords in free text."""
    text = _KV_PASSWORD.sub(lambda m: m.group(1) + MASK, text)
    return _URI_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)


class Redactor:
    """Replaces known secret values and password patterns in text with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first: a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= _MIN_SECRET_CHARS},
                              key=len, reverse=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        return cls(secret_values(settings))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return redact_patterns(text)


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold: secret fields and the database password."""
    values: list[str] = []
    for name in settings.secret_fields():
        value = str(getattr(settings, name))
        # a list setting (e.g. earlier keys, comma separated): each item may appear alone
        values += [value, *(part.strip() for part in value.split(","))]
    try:
        password = conninfo_to_dict(settings.database_url).get("password") \
            if settings.database_url else None
    except Exception:  # noqa: BLE001 - an unparseable DSN: the patterns still mask it
        password = None
    if password:
        values.append(str(password))
    return [v for v in values if v]
