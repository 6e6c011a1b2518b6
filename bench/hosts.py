"""bench/hosts: one host of a two-host deployment lost with all its processes, on the local
three-broker Kafka cluster; prints how long each stage's partitions took to move to the other
host, and the exact checks after the drain.

    .venv/bin/python bench/hosts.py [--mails 1000] [--seed S] [--log-dir DIR]

Starts the cluster when it is not running (``mailroom stack cluster up``; left running, stop it
with ``mailroom stack cluster down``). Two simulated hosts run ingest, unwrap, route and persist,
each with its own state folder, metrics ports and log folder; the host whose ingest polls the
forward mailbox is SIGKILLed whole while the first half of the mail is on its way, the second
half is laid once its partitions moved (docs/deploy.md, "Losing a host"). Prints the machine's
load average with the figures, and one JSON line at the end; exits 1 when a check fails.
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

from chaoslib import hosts  # noqa: E402

from mailroom import settings as settings_module  # noqa: E402
from mailroom.console.stack import cluster  # noqa: E402
from mailroom.log import configure as configure_logging  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="the hosts' state and log folders (default: a new temporary one)")
    args = parser.parse_args()
    # SIGTERM unwinds like an exception: the stages stopped, the run's schema and topics removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    configure_logging("WARNING")
    base = settings_module.load()
    for line in cluster.up(base, cluster.DEFAULT_BROKERS):
        print(line, flush=True)
    load = os.getloadavg()
    print(f"hosts: seed {seed}, {args.mails} mails, {os.cpu_count()} cores, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
    logs = args.log_dir or Path(tempfile.mkdtemp(prefix="mailroom-hosts-"))
    r = hosts.run(cluster.client_settings(base), mails=args.mails, seed_value=seed,
                  log_dir=logs, say=lambda text: print(text, flush=True))
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    failed = [c.name for c in r.failed]
    print(json.dumps({
        "seed": seed, "mails": r.mails, "lost": r.victim, "survivor": r.survivor,
        "stored_at_loss": r.stored_at_kill,
        "moved_s": {s: round(t, 1) for s, t in r.moved_s.items()},
        "partitions_before": {s: [len(h.partitions) for h in found]
                              for s, found in r.before.items()},
        "partitions_after": {s: [len(h.partitions) for h in found]
                             for s, found in r.after.items()},
        "drained": r.drained, "total_s": round(r.total_s, 1),
        "stop_codes": r.stop_codes, "ok": not failed, "failed": failed,
    }, sort_keys=True))
    if failed:
        print(f"FAILED: {', '.join(failed)} (seed {seed}; logs in {logs})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
