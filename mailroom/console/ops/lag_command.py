"""``mailroom lag [--watch] [--json] [--interval S]``: the lag report as a table or JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import datetime
from typing import Any

from mailroom.console.ops.groups import Cluster
from mailroom.console.ops.lag import LagReport, report, sample
from mailroom.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lag", help="consumer lag per stage and partition (messages, seconds)")
    p.add_argument("--watch", action="store_true", help="refresh every --interval seconds")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--interval", type=float, default=3.0,
                   help="seconds between the two samples that decide 'stalled' (default 3)")
    p.set_defaults(func=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not args.watch:
        rep = report(settings, interval_s=args.interval)
        print(as_json(rep) if args.json else render(rep))
        return 0 if all(g.status == "OK" for g in rep.groups) else 1
    with Cluster(settings) as cluster:
        previous = sample(cluster, settings)
        while True:
            time.sleep(args.interval)
            rep = report(settings, interval_s=args.interval, previous=previous, cluster=cluster)
            previous = rep.groups
            if args.json:
                print(as_json(rep, indent=None), flush=True)
            else:
                sys.stdout.write("\x1b[2J\x1b[H" + render(rep) + "\n")
                sys.stdout.flush()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def as_dict(rep: LagReport) -> dict[str, Any]:
    out = dataclasses.asdict(rep)
    for g, d in zip(rep.groups, out["groups"], strict=True):
        d["messages_behind"] = g.messages_behind
        d["seconds_behind"] = round(g.seconds_behind, 3)
    return out


def as_json(rep: LagReport, indent: int | None = 2) -> str:
    return json.dumps(as_dict(rep), default=_plain, indent=indent)


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def render(rep: LagReport) -> str:
    lines = [f"lag at {rep.taken_at:%Y-%m-%d %H:%M:%S} UTC (status over {rep.interval_s:g} s)"]
    for g in rep.groups:
        head = (f"\n{g.stage:<8} group {g.group}  {g.status}  members={g.members}  "
                f"behind={g.messages_behind} msgs / {g.seconds_behind:.1f} s  "
                f"offsets in {g.offsets_in}")
        if g.copy_agrees is not None:
            head += "  kafka copy " + ("agrees" if g.copy_agrees else "DIFFERS")
        lines.append(head)
        if g.error:
            lines.append(f"  error: {g.error}")
            continue
        lines.append(f"  {'TOPIC':<40} {'PART':>4} {'COMMITTED':>10} {'END':>10} "
                     f"{'OFFSET-LAG':>10} {'BEHIND':>8} {'SECONDS':>9}  STATUS")
        for p in g.partitions:
            behind = f"{p.messages_behind}{'' if p.exact else '~'}"
            copy = "" if p.kafka_copy in (None, p.committed) else f"  (kafka copy {p.kafka_copy})"
            lines.append(f"  {p.topic:<40} {p.partition:>4} {_n(p.committed):>10} {p.end:>10} "
                         f"{_n(p.offset_lag):>10} {behind:>8} {p.seconds_behind:>9.1f}  "
                         f"{p.status}{copy}")
    lines.append(f"\ningest   mailbox backlog on the servers  {rep.ingest_status}")
    if rep.ingest_error:
        lines.append(f"  error: {rep.ingest_error}")
    for b in rep.mailboxes:
        lines.append(f"  {b.address:<40} {b.folder:<12} backlog={_n(b.backlog):>6} "
                     f"{b.seconds_behind:>9.1f} s  {b.status}"
                     f"{'' if b.enabled else '  (mailbox disabled: ' + b.mailbox_status + ')'}")
    return "\n".join(lines)
