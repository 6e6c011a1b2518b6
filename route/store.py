"""RouteConfig in PostgreSQL (migration 0040): save a whole configuration, load it back.

``save`` replaces everything in the caller's transaction, so a rules file is applied entirely
or not at all; ``load`` is what the route stage and ``mailroom rules show`` read.
"""

from __future__ import annotations

import re
from dataclasses import fields

import psycopg

from mailroom.errors import ConfigError
from route.config import (
    CaseSettings,
    CorrelationSwitches,
    PartySettings,
    RouteConfig,
    RuleItem,
    TrackFilter,
)
from route.tokens import TokenFormat

_SWITCHES = [f.name for f in fields(CorrelationSwitches)]
_COLUMNS = ", ".join(f'"{n}"' for n in _SWITCHES)


def save(conn: psycopg.Connection, config: RouteConfig, source: str = "") -> None:
    with conn.cursor() as cur:
        known = {row[0] for row in cur.execute("SELECT id FROM queues")}
        missing = sorted(set(config.queue_rules) - known)
        if missing:
            raise ConfigError(
                f"queues.{missing[0]}: no such queue (import it first: mailroom import queues)"
            )
        t, c, p = config.token, config.cases, config.parties
        cur.execute(
            """UPDATE route_settings SET default_filter = %s, token_prefix = %s,
                   token_separator = %s, token_digits = %s, token_former_prefixes = %s,
                   reopen_window_days = %s, rate_limit_cases = %s,
                   rate_limit_window_hours = %s, max_matches = %s,
                   loaded_at = now(), loaded_from = %s""",
            (config.default_filter.value, t.prefix, t.separator, t.digits,
             list(t.former_prefixes), c.reopen_window_days, c.rate_limit_cases,
             c.rate_limit_window_hours, p.max_matches, source),
        )
        cur.execute("DELETE FROM route_track_filters")
        owners = sorted(set(config.filters) | set(config.create_contacts))
        cur.executemany(
            "INSERT INTO route_track_filters (owner, filter, create_contacts) VALUES (%s, %s, %s)",
            [(o, config.filters[o].value if o in config.filters else None,
              config.create_contacts.get(o, False)) for o in owners],
        )
        cur.execute("DELETE FROM route_correlation")
        scopes = {"*": config.correlation, **config.correlation_scopes}
        cur.executemany(
            f"INSERT INTO route_correlation (scope, {_COLUMNS}) "
            f"VALUES (%s{', %s' * len(_SWITCHES)})",
            [(scope, *(getattr(s, n) for n in _SWITCHES)) for scope, s in scopes.items()],
        )
        cur.execute("DELETE FROM route_queue_rules")
        cur.executemany(
            """INSERT INTO route_queue_rules (queue_id, position, name, sender, subject_pattern,
                   body_pattern, recipient, create_case, create_queue_item)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [(q, i, it.name, it.sender, it.subject.pattern if it.subject else None,
              it.body.pattern if it.body else None, it.recipient, it.create_case,
              it.create_queue_item)
             for q, items in config.queue_rules.items() for i, it in enumerate(items)],
        )


def load(conn: psycopg.Connection) -> RouteConfig:
    with conn.cursor() as cur:
        row = cur.execute(
            """SELECT default_filter, token_prefix, token_separator, token_digits,
                      token_former_prefixes, reopen_window_days, rate_limit_cases,
                      rate_limit_window_hours, max_matches FROM route_settings"""
        ).fetchone()
        if row is None:
            raise ConfigError("route_settings is empty: run `mailroom db migrate`")
        filters: dict[str, TrackFilter] = {}
        create: dict[str, bool] = {}
        for owner, flt, contacts in cur.execute(
            "SELECT owner, filter, create_contacts FROM route_track_filters"
        ):
            if flt is not None:
                filters[owner] = TrackFilter(flt)
            if contacts:
                create[owner] = True
        scopes: dict[str, CorrelationSwitches] = {}
        for scope, *values in cur.execute(f"SELECT scope, {_COLUMNS} FROM route_correlation"):
            scopes[scope] = CorrelationSwitches(**dict(zip(_SWITCHES, values, strict=True)))
        rules: dict[str, list[RuleItem]] = {}
        for q, name, sender, subj, body, rcpt, case, item in cur.execute(
            """SELECT queue_id, name, sender, subject_pattern, body_pattern, recipient,
                      create_case, create_queue_item
               FROM route_queue_rules ORDER BY queue_id, position"""
        ):
            rules.setdefault(q, []).append(RuleItem(
                name, sender,
                re.compile(subj, re.IGNORECASE) if subj else None,
                re.compile(body, re.IGNORECASE) if body else None,
                rcpt, case, item,
            ))
    default = scopes.pop("*", CorrelationSwitches())
    return RouteConfig(
        default_filter=TrackFilter(row[0]),
        filters=filters,
        create_contacts=create,
        correlation=default,
        correlation_scopes=scopes,
        token=TokenFormat(row[1], row[2], row[3], tuple(row[4])),
        queue_rules={q: tuple(items) for q, items in rules.items()},
        cases=CaseSettings(row[5], row[6], row[7]),
        parties=PartySettings(row[8]),
    )


def issue_token(conn: psycopg.Connection, kind: str, ident: str) -> int:
    """Take the next token number for a regarding record (the caller commits)."""
    row = conn.execute(
        "INSERT INTO route_tokens (regarding_kind, regarding_id) VALUES (%s, %s) RETURNING number",
        (kind, ident),
    ).fetchone()
    assert row is not None
    return int(row[0])
