"""``mailroom replay STAGE (--to-datetime T | --to-offset N | --shift-by N | --to-earliest)
[--partition P] [--execute] [--follow]``."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime

from mailroom.console.ops.groups import STREAM_STAGES, Cluster, stage_group
from mailroom.console.ops.lag import sample_group
from mailroom.console.ops.replay import Move, ReplayRefused, Target, execute, plan, refuse_if_live
from mailroom.settings import Settings

BAR = 40


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="move a stage's offsets back (or forward) to re-process")
    p.add_argument("stage", choices=list(STREAM_STAGES))
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--to-earliest", action="store_true")
    how.add_argument("--to-offset", type=int, metavar="N")
    how.add_argument("--shift-by", type=int, metavar="N")
    how.add_argument("--to-datetime", type=_when, metavar="T",
                     help="ISO 8601 with a zone, e.g. 2026-11-27T09:00:00Z")
    p.add_argument("--partition", type=int, metavar="P", help="only this partition")
    p.add_argument("--execute", action="store_true", help="write the offsets (default: dry run)")
    p.add_argument("--follow", action="store_true",
                   help="then show a progress bar until the stage has caught up again")
    p.add_argument("--timeout", type=float, default=0, help="--follow gives up after S seconds")
    p.set_defaults(func=run)


def _when(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc


def run(settings: Settings, args: argparse.Namespace) -> int:
    target = Target(args.to_earliest, args.to_offset, args.shift_by, args.to_datetime)
    with Cluster(settings) as cluster:
        moves = plan(cluster, settings, args.stage, target, args.partition)
        print(render(stage_group(settings, args.stage), moves))
        if not args.execute:
            try:
                refuse_if_live(cluster, settings, args.stage)
            except ReplayRefused as exc:  # a dry run only warns: --execute would refuse
                print(f"note: {exc}")
            print("dry run: nothing changed (add --execute to move the offsets)")
            return 0
        execute(cluster, settings, args.stage, moves)
        print(f"offsets moved for {len(moves)} partition(s); start the stage to replay")
        if args.follow:
            return follow(cluster, settings, args.stage, args.timeout)
    return 0


def render(group: str, moves: list[Move]) -> str:
    lines = [f"group {group}",
             f"  {'TOPIC':<40} {'PART':>4} {'EARLIEST':>9} {'END':>9} {'OLD':>9} {'NEW':>9}"]
    for m in moves:
        old = "-" if m.old is None else str(m.old)
        lines.append(f"  {m.topic:<40} {m.partition:>4} {m.earliest:>9} {m.end:>9} {old:>9} "
                     f"{m.new:>9}")
    return "\n".join(lines)


def follow(cluster: Cluster, settings: Settings, stage: str, timeout: float = 0) -> int:
    """A progress bar while the (restarted) stage catches up: done when nothing is behind."""
    total = None
    began = time.monotonic()
    while True:
        behind = sample_group(cluster, settings, stage).messages_behind
        total = max(total or 0, behind)
        done = total - behind
        filled = BAR if total == 0 else BAR * done // total
        sys.stdout.write(f"\r[{'#' * filled}{'.' * (BAR - filled)}] {done}/{total} "
                         f"({behind} behind)")
        sys.stdout.flush()
        if behind == 0:
            print("\ncaught up")
            return 0
        if timeout and time.monotonic() - began > timeout:
            print(f"\nstill {behind} behind after {timeout:g} s")
            return 1
        time.sleep(1.0)
