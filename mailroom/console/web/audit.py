"""The audit log (``web_audit``): every change made through the dashboard or ``mailroom web
user`` — who, what, on what, when, from where — written in the same transaction as the change
where there is one, and shown to admins on ``/audit``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class Event:
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    address: str


def record(conn: psycopg.Connection, actor: str, action: str, target: str = "",
           detail: dict[str, Any] | None = None, address: str = "") -> None:
    conn.execute(
        "INSERT INTO web_audit (actor, action, target, detail, address) "
        "VALUES (%s, %s, %s, %s, %s)",
        (actor, action, target[:500], Jsonb(detail or {}), address[:200]))


def recent(conn: psycopg.Connection, limit: int = 200) -> list[Event]:
    rows = conn.execute(
        "SELECT at, actor, action, target, detail, address FROM web_audit "
        "ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
    return [Event(*r) for r in rows]
