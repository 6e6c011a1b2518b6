"""``mailroom config``: show every setting, its environment name and its current value.

Secret settings are never shown, only whether they are set; the database URL is shown without
its password (:mod:`mailroom.redact`).
"""

from __future__ import annotations

import argparse

from mailroom.redact import dsn_without_password
from mailroom.settings import Settings, describe


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="show the settings and where each comes from")
    parser.set_defaults(func=show)


def shown_value(settings: Settings, name: str) -> str:
    """What ``mailroom config`` prints for one setting."""
    value = getattr(settings, name)
    if name in Settings.secret_fields():
        return "(set, not shown)" if value else "(not set)"
    if name == "database_url":
        return repr(dsn_without_password(value))
    return repr(value)


def show(settings: Settings, args: argparse.Namespace) -> int:
    for name, env, _default, doc in describe():
        print(f"{name} = {shown_value(settings, name)}\n    {env}: {doc}")
    return 0
