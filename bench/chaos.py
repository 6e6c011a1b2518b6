"""bench/chaos: kill stage processes at random while N forwarded mails go through, then check
that every mail became exactly one record and nothing is lost, doubled, stuck or owed.

    .venv/bin/python bench/chaos.py [--mails 3000] [--kills 25] [--seed S] [--clean-run]
                                    [--min-interval 2] [--max-interval 4] [--victims unwrap,...]
                                    [--pg-restarts N] [--cluster [--broker-kills 3]]

Seeds the forwards into one forward mailbox on the local Dovecot, runs ingest, unwrap, route and
persist as separate processes (each its own process group) with their own topic prefix and
database schema, and every 2–4 s SIGKILLs a random stage's process group and starts it again.
Then it stops killing, waits for the drain and checks exactly (docs/chaos.md). ``--clean-run``
first runs the same mail without kills, for the time to compare with. ``--cluster`` runs it
all on the local three-broker Kafka cluster (``mailroom stack cluster up``, started when it is
not running and left running) instead of the stack's single broker, with ``--broker-kills``
brokers SIGKILLed among the stage kills, each started again after the next stage kill and the
next one killed only once every partition is back in sync. Prints the seed, the machine's cores
and load average, kills per stage, drain time, every check, and one JSON line at the end; exits
1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on the path, and its ingest.py, route.py, ...
# would shadow the stage packages.
sys.path[0] = str(_REPO)
sys.path.insert(1, str(_REPO / "tests" / "chaos"))

from chaoslib.drive import ChaosPlan  # noqa: E402
from chaoslib.runs import RunResult, run  # noqa: E402
from chaoslib.stages import STAGES  # noqa: E402

from mailroom import settings as settings_module  # noqa: E402
from mailroom.console.stack import cluster  # noqa: E402
from mailroom.log import configure as configure_logging  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--mails", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=25)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--min-interval", type=float, default=2.0, help="seconds between kills")
    parser.add_argument("--max-interval", type=float, default=4.0)
    parser.add_argument("--victims", default=",".join(STAGES),
                        help="the stages killed, comma separated (default: all four)")
    parser.add_argument("--pg-restarts", type=int, default=0,
                        help="also restart the local stack's PostgreSQL this often (cuts every "
                        "session of everyone using the stack)")
    parser.add_argument("--cluster", action="store_true",
                        help="run on the local three-broker cluster (started if need be)")
    parser.add_argument("--broker-kills", type=int, default=None,
                        help="with --cluster: brokers SIGKILLed among the stage kills "
                        "(default 3)")
    parser.add_argument("--clean-run", action="store_true",
                        help="first run the same mail without kills, to compare the time")
    parser.add_argument("--drain-timeout", type=float, default=600.0,
                        help="seconds to wait for the drain after the last kill")
    parser.add_argument("--stall-timeout", type=float, default=120.0,
                        help="give up waiting when nothing moved for this many seconds")
    parser.add_argument("--keep", action="store_true",
                        help="keep the schema, topics and mail user for a look afterwards")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="stage logs (default: a new temporary folder)")
    args = parser.parse_args()
    # SIGTERM (a timeout, a Ctrl-C elsewhere) unwinds like an exception: the stages are stopped
    # and the run's schema, topics and mail user removed, instead of orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    if args.broker_kills is not None and not args.cluster:
        parser.error("--broker-kills: only with --cluster (the single broker has no spare)")
    broker_kills = (3 if args.broker_kills is None else args.broker_kills) if args.cluster else 0
    if broker_kills > args.kills:
        parser.error("--broker-kills: at most one per stage kill (they are spread among them)")
    print(f"chaos: seed {seed} (repeat with --seed {seed}), {args.mails} mails, "
          f"{args.kills} kills every {args.min_interval:g}-{args.max_interval:g} s, "
          f"{args.pg_restarts} PostgreSQL restarts"
          + (f", {broker_kills} broker kills on the three-broker cluster" if args.cluster
             else ""), flush=True)
    print(f"machine: {os.cpu_count()} cores, load average {_load()}", flush=True)
    configure_logging("WARNING")
    base = settings_module.load()
    if args.cluster:
        for line in cluster.up(base, cluster.DEFAULT_BROKERS):
            print(line, flush=True)
        base = cluster.client_settings(base)
    logs = args.log_dir or Path(tempfile.mkdtemp(prefix="mailroom-chaos-"))

    def say(text: str) -> None:
        print(text, flush=True)

    clean = None
    if args.clean_run:
        clean = run(base, mails=args.mails, seed_value=seed, log_dir=logs / "clean",
                    drain_timeout_s=args.drain_timeout,
                    stall_timeout_s=args.stall_timeout, keep=args.keep, say=say)
        report(clean)
    if args.pg_restarts > args.kills:
        parser.error("--pg-restarts: at most one per kill (they are spread among the kills)")
    victims = tuple(v.strip() for v in args.victims.split(",") if v.strip())
    if not victims or set(victims) - set(STAGES):
        parser.error(f"--victims: one or more of {', '.join(STAGES)}")
    plan = ChaosPlan(args.kills, args.min_interval, args.max_interval, args.pg_restarts,
                     victims, broker_kills)
    chaos = run(base, mails=args.mails, seed_value=seed, log_dir=logs / "chaos", plan=plan,
                drain_timeout_s=args.drain_timeout,
                stall_timeout_s=args.stall_timeout, keep=args.keep, say=say)
    report(chaos)
    print(f"load average at the end: {_load()}")
    line: dict[str, object] = {"seed": seed, "cluster": args.cluster, "chaos": chaos.summary()}
    if clean is not None:
        line["clean"] = clean.summary()
        if chaos.stored_s and clean.stored_s:
            print(f"time to store every mail: {chaos.stored_s:.1f} s under "
                  f"{chaos.kills_in_flight} kills against {clean.stored_s:.1f} s clean "
                  f"({chaos.stored_s / clean.stored_s:.1f}x)")
    failed = [f"{'chaos' if r.chaos else 'clean'}: {c.name}"
              for r in (clean, chaos) if r is not None for c in r.failed]
    line["ok"] = not failed
    line["failed"] = failed
    print(json.dumps(line, sort_keys=True))
    if failed:
        print(f"FAILED: {', '.join(failed)} (seed {seed}; stage logs in {logs})",
              file=sys.stderr)
        return 1
    return 0


def report(r: RunResult) -> None:
    kind = "chaos" if r.chaos else "clean"
    rate = r.mails / r.stored_s if r.stored_s else 0.0
    stored = f"every mail stored at +{r.stored_s:.1f} s" if r.stored_s else "NOT all stored"
    print(f"{kind}: {r.mails} mails, {stored}, drained at +{r.total_s:.1f} s "
          f"({rate:.0f} mails/s), {r.raw_records} raw records (ingest redelivered "
          f"{r.raw_records - r.mails})")
    if r.chaos:
        kills = ", ".join(f"{s} {r.kills[s]}" for s in STAGES)
        print(f"  kills: {sum(r.kills.values())} ({kills}); {r.kills_in_flight} while mail was "
              f"still on its way; drained {r.drain_s:.1f} s after the last kill")
        for at, took in r.log.pg_restarts:
            print(f"  PostgreSQL restarted at +{at:.0f} s ({took:.1f} s)")
        for b in r.log.broker_kills:
            print(f"  broker {b.node} killed at +{b.at_s:.0f} s, serving again {b.down_s:.1f} s "
                  f"later, in sync {b.in_sync_s:.1f} s after that")
    for e in r.exits:
        print(f"  EXIT: {e.stage} exited on its own at +{e.at_s:.0f} s (rc {e.returncode})")
    for c in r.checks:
        print(f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
    bad_stops = {s: rc for s, rc in r.stop_codes.items() if rc != 0}
    if bad_stops:
        print(f"  SIGTERM at the end: exit codes {bad_stops} (0 expected)")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
