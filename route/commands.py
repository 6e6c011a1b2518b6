"""``mailroom rules load FILE | rules preview FILE | rules show`` and
``mailroom token new --regarding KIND:ID``."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

from mailroom.db import connect
from mailroom.errors import ConfigError
from mailroom.settings import Settings
from route import preview as rules_preview
from route import store
from route.config import RouteConfig, from_document

TOKEN_REGARDING = ("case", "contact", "account", "lead", "user", "queue")


def register(sub: argparse._SubParsersAction) -> None:
    rules = sub.add_parser(
        "rules", help="track filters, correlation switches, token format, queue and case rules"
    )
    rsub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    load = rsub.add_parser("load", help="validate a TOML rules file and make it the configuration")
    load.add_argument("file", type=Path)
    load.add_argument("--check", action="store_true", help="validate only, change nothing")
    load.set_defaults(func=load_rules)
    preview = rsub.add_parser(
        "preview", help="compare what a TOML rules file would plan for recent mail with the "
        "rules in force (reads only; loads nothing)")
    preview.add_argument("file", type=Path)
    preview.add_argument("--since", default="7d", metavar="AGE",
                         help="replay the unwrapped emails of this window: 30m, 12h, 7d, 2w "
                         "(default 7d)")
    preview.add_argument("--limit", type=int, default=5, metavar="N",
                         help="examples shown per kind of change (default 5)")
    preview.add_argument("--json", action="store_true")
    preview.set_defaults(func=preview_rules)
    show = rsub.add_parser("show", help="print the configuration in force")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_rules)

    token = sub.add_parser("token", help="tracking tokens for outgoing subjects")
    tsub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    new = tsub.add_parser("new", help="issue a tracking token regarding a record")
    new.add_argument("--regarding", required=True, metavar="KIND:ID",
                     help=f"the record replies belong to; KIND one of {', '.join(TOKEN_REGARDING)}")
    new.set_defaults(func=new_token)


def read_rules(path: Path) -> RouteConfig:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return from_document(doc)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_rules(settings: Settings, args: argparse.Namespace) -> int:
    config = read_rules(args.file)
    queues = sum(len(items) for items in config.queue_rules.values())
    summary = (f"{len(config.filters)} owner filters, {len(config.correlation_scopes)} "
               f"correlation scopes, {queues} queue rule items in {len(config.queue_rules)} queues")
    if args.check:
        print(f"{args.file}: valid ({summary})")
        return 0
    with connect(settings) as conn:
        store.save(conn, config, source=str(args.file))
    print(f"loaded {args.file}: {summary}")
    return 0


def preview_rules(settings: Settings, args: argparse.Namespace) -> int:
    # The same validation as `rules load --check`: a file that would not load is not previewed.
    candidate = read_rules(args.file)
    since = rules_preview.parse_since(args.since)
    if args.limit < 0:
        raise ConfigError(f"--limit {args.limit}: expected 0 or more")
    report = rules_preview.run(settings, candidate, since, args.limit)
    if args.json:
        print(json.dumps({"file": str(args.file), **report.as_data()}, indent=2))
        return 0
    print(f"preview of {args.file} against the rules in force")
    for line in report.lines():
        print(line)
    return 0


def describe(config: RouteConfig) -> dict[str, object]:
    """The configuration as plain data, in the rules file's own shape."""
    scopes = {k: vars(v) for k, v in sorted(config.correlation_scopes.items())}
    return {
        "track": {"default": config.default_filter.value,
                  "owners": {k: v.value for k, v in sorted(config.filters.items())},
                  "create_contacts": dict(sorted(config.create_contacts.items()))},
        "correlation": {**vars(config.correlation), "scopes": scopes},
        "token": {"prefix": config.token.prefix, "separator": config.token.separator,
                  "digits": config.token.digits,
                  "former_prefixes": list(config.token.former_prefixes),
                  "example": config.token.format(1234)},
        "queues": {q: {"rules": [
            {"name": it.name, "sender": it.sender,
             "subject": it.subject.pattern if it.subject else None,
             "body": it.body.pattern if it.body else None,
             "recipient": it.recipient, "create_case": it.create_case,
             "create_queue_item": it.create_queue_item} for it in items]}
            for q, items in sorted(config.queue_rules.items())},
        "cases": vars(config.cases),
        "parties": vars(config.parties),
    }


def show_rules(settings: Settings, args: argparse.Namespace) -> int:
    with connect(settings) as conn:
        config = store.load(conn)
    data = describe(config)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for section, body in data.items():
        print(f"[{section}]")
        assert isinstance(body, dict)
        for key, value in body.items():
            print(f"  {key} = {json.dumps(value)}")
    return 0


def new_token(settings: Settings, args: argparse.Namespace) -> int:
    kind, sep, ident = args.regarding.partition(":")
    if not sep or kind not in TOKEN_REGARDING or not ident:
        raise ConfigError(
            f"--regarding {args.regarding!r}: expected KIND:ID, KIND one of "
            f"{', '.join(TOKEN_REGARDING)}"
        )
    with connect(settings) as conn:
        config = store.load(conn)
        number = store.issue_token(conn, kind, ident)
    print(config.token.format(number))
    return 0
