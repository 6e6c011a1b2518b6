"""``mailroom dlq list | show ID | retry (ID | --all) [--stage S] [--reason CODE]``."""

from __future__ import annotations

import argparse

from mailroom.codec import Codec
from mailroom.console.ops.dlq import counts, read_letters, retry, select, sendable, summary
from mailroom.errors import ConfigError
from mailroom.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dlq", help="dead letters: list, show, retry")
    verbs = p.add_subparsers(dest="verb", required=True)
    ls = verbs.add_parser("list", help="counts by stage and reason; --verbose: every letter")
    ls.add_argument("--stage")
    ls.add_argument("--reason", help="reason code, e.g. not_a_forwarder")
    ls.add_argument("--verbose", "-v", action="store_true")
    show = verbs.add_parser("show", help="one dead letter: source, attempts, reason, payload")
    show.add_argument("id", metavar="PARTITION:OFFSET")
    again = verbs.add_parser("retry", help="send dead letters back to their stage's input")
    again.add_argument("id", nargs="?", metavar="PARTITION:OFFSET")
    again.add_argument("--all", action="store_true", help="every letter matching the filters")
    again.add_argument("--stage")
    again.add_argument("--reason")
    p.set_defaults(func=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    codec = Codec.from_settings(settings)
    letters = read_letters(settings, codec)
    if args.verb == "list":
        chosen = select(letters, stage=args.stage, reason=args.reason)
        print(f"{'STAGE':<10} {'REASON':<24} {'COUNT':>6}")
        for (stage, reason), n in sorted(counts(chosen).items()):
            print(f"{stage:<10} {reason:<24} {n:>6}")
        if args.verbose:
            for x in chosen:
                d = x.letter
                assert d is not None
                print(f"{x.id:<10} {d.stage:<8} {d.reason_code:<20} {d.failed_at:%Y-%m-%d %H:%M}"
                      f"  {d.source_topic}/{d.source_partition}@{d.source_offset}"
                      f"  retries={d.retries}")
        return 0
    if args.verb == "show":
        [x] = select(letters, letter_id=args.id)
        d = x.letter
        assert d is not None
        print(f"dead letter {x.id} on {settings.topic('dlq')}")
        for label, value in [
            ("stage", d.stage), ("reason_code", d.reason_code), ("attempts", d.attempts),
            ("retries", d.retries), ("failed_at", d.failed_at),
            ("source", f"{d.source_topic}/{d.source_partition}@{d.source_offset}"),
            ("source_key", (d.source_key or b"").decode("utf-8", "replace")),
            ("original_timestamp", d.original_timestamp),
            *summary(codec, d).items(), ("reason", d.reason),
        ]:
            print(f"  {label:<19} {value}")
        return 0
    if not args.id and not args.all:
        raise ConfigError("dlq retry: give a letter ID, or --all (with --stage/--reason filters)")
    chosen = select(letters, letter_id=args.id, stage=args.stage, reason=args.reason)
    n = retry(settings, codec, chosen)
    print(f"sent {n} dead letter(s) back to their source topics")
    if empty := [x.id for x in chosen if x.letter is not None and not sendable(x.letter)]:
        print(f"skipped {len(empty)} carrying nothing to send (messages ingest could not fetch: "
              f"still on their mail servers): {', '.join(empty)}")
    return 0
