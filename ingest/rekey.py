"""Changing stored mailbox credentials: one mailbox's password, or every one's key.

Both write only ``ingest_mailboxes.secret`` (the ingest processes' role cannot: these run with
the administrator's connection). Nothing here is published: credentials never travel on the
mailboxes topic, and every pass reads them from PostgreSQL, so a change applies at the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from ingest import credentials, store
from ingest.model import Mailbox
from mailroom.errors import ConfigError
from mailroom.settings import Settings


def set_password(settings: Settings, conn: psycopg.Connection, key: int | str,
                 clear: str) -> Mailbox:
    """Store a new password (or OAuth2 client secret) for the mailbox named by address or id,
    encrypted under the current key. The caller commits."""
    if not clear:
        raise ConfigError("the new password is empty")
    m = store.mailbox(conn, key)
    if not m.polled:
        raise ConfigError(f"mailbox {m.address} arrives via a forward mailbox and is never logged "
                          "in to: it has no credentials to change")
    conn.execute("UPDATE ingest_mailboxes SET secret = %s, updated_at = now() WHERE id = %s",
                 (credentials.encrypt(settings, clear), m.id))
    return m


@dataclass
class Rotation:
    rotated: list[str] = field(default_factory=list)  # addresses re-encrypted
    undecryptable: list[str] = field(default_factory=list)  # no configured key opens them


def rotate_all(settings: Settings, conn: psycopg.Connection) -> Rotation:
    """Re-encrypt every stored credential under the current key; those no configured key can
    decrypt are left as they are and named. One transaction: the caller commits."""
    credentials.check_key(settings)
    result = Rotation()
    rows = conn.execute(
        "SELECT id, address, secret FROM ingest_mailboxes WHERE octet_length(secret) > 0 "
        "ORDER BY address FOR UPDATE").fetchall()
    for mailbox_id, address, secret in rows:
        try:
            token = credentials.rotate(settings, bytes(secret))
        except ConfigError:
            result.undecryptable.append(address)
            continue
        conn.execute("UPDATE ingest_mailboxes SET secret = %s, updated_at = now() WHERE id = %s",
                     (token, mailbox_id))
        result.rotated.append(address)
    return result
