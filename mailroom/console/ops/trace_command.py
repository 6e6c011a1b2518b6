"""``mailroom trace MESSAGE-ID | DEDUPE-KEY | RAW-IDENTITY [--json]``."""

from __future__ import annotations

import argparse
import json

from mailroom.codec import Codec
from mailroom.console.ops.trace import Tracer, where_it_stopped
from mailroom.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="what each stage did with one message, and why")
    p.add_argument("name", metavar="MESSAGE-ID",
                   help="Message-ID (with or without <>), dedupe key, or raw identity")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    tracer = Tracer(settings, Codec.from_settings(settings))
    try:
        steps = tracer.story(args.name)
    finally:
        tracer.close()
    if args.json:
        print(json.dumps([{"at": s.at.isoformat(), "stage": s.stage, "event": s.event,
                           "key": s.key, "detail": s.detail, "where": s.where}
                          for s in steps], indent=2))
    else:
        for s in steps:
            print(s.line())
        print(f"=> {where_it_stopped(steps)}")
    return 0 if steps else 1
