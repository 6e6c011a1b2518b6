"""``mailroom config``: show every setting, its environment name and its current value."""

from __future__ import annotations

import argparse

from mailroom.settings import Settings, describe

SECRET_FIELDS = {"secret_key", "kafka_sasl_password"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="show the settings and where each comes from")
    parser.set_defaults(func=show)


def show(settings: Settings, args: argparse.Namespace) -> int:
    for name, env, _default, doc in describe():
        value = getattr(settings, name)
        shown = "(set)" if name in SECRET_FIELDS and value else repr(value)
        print(f"{name} = {shown}\n    {env}: {doc}")
    return 0
