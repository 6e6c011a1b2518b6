"""Brokers of the local three-broker cluster killed during a chaos run (``bench/chaos.py
--cluster``): one broker SIGKILLed, down while the stage kills go on, started again, and the
next broker killed only once every partition is back in sync — with replication factor 3 and
``min.insync.replicas=2`` one broker down never stops the pipeline, two would.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailroom import kafka
from mailroom.console.stack import cluster
from mailroom.settings import Settings

IN_SYNC_TIMEOUT_S = 180.0


@dataclass
class BrokerKill:
    node: int
    at_s: float
    down_s: float = 0.0  # killed -> serving again
    in_sync_s: float = 0.0  # serving again -> every partition's replicas in sync


def under_replicated(settings: Settings) -> list[str]:
    """Partitions of every topic on the cluster (internal ones too) whose in-sync replicas
    are fewer than their replicas; [] once a restarted broker has caught up everywhere."""
    admin = kafka.make_admin(settings)
    try:
        return [f"{t['name']}/{p['partition_index']}"
                for t in admin.describe_topics(admin.list_topics()) for p in t["partitions"]
                if set(p["isr_nodes"]) != set(p["replica_nodes"])]
    finally:
        admin.close()


def wait_in_sync(settings: Settings, timeout_s: float = IN_SYNC_TIMEOUT_S) -> float:
    """Seconds until no partition is under-replicated (raises after ``timeout_s``)."""
    start = time.monotonic()
    while lagging := under_replicated(settings):
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"not in sync after {timeout_s:.0f} s: {lagging[:5]}")
        time.sleep(0.5)
    return time.monotonic() - start


def kill_one(settings: Settings, rng: random.Random, at_s: float) -> BrokerKill:
    """SIGKILL a random running broker of the cluster (``settings`` are the stack's)."""
    running = [n.id for n in cluster.nodes(settings) if cluster.pid(settings, n.id)]
    victim = rng.choice(running)
    cluster.kill(settings, victim)
    return BrokerKill(victim, at_s)


def restart(settings: Settings, kill: BrokerKill, elapsed: Callable[[], float]) -> None:
    """Start the killed broker again (``elapsed``: the run's clock) and wait until every
    partition is back in sync."""
    cluster.up(settings, cluster.formed(settings) or cluster.DEFAULT_BROKERS)
    back = elapsed()
    kill.down_s = back - kill.at_s
    kill.in_sync_s = wait_in_sync(settings)
