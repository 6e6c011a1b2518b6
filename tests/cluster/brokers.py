"""Looking at the three-broker cluster from a test: who leads, who coordinates, who is in sync
(the last from the chaos suite's :mod:`chaoslib.broker_kills`, which ``bench/chaos.py`` uses too).
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter

from chaoslib.broker_kills import under_replicated, wait_in_sync

from mailroom import kafka
from mailroom.console.stack import cluster
from mailroom.console.stack.kafka import REPO
from mailroom.settings import Settings

__all__ = ["busiest_leader", "coordinator", "live_brokers", "under_replicated", "wait_in_sync"]

KAFKA_TOOL = REPO / "deploy" / "kafka" / "kafka-tool"


def busiest_leader(settings: Settings, topics: list[str], spare: set[int]) -> int:
    """The broker leading the most partitions of ``topics``, not one of ``spare``."""
    admin = kafka.make_admin(settings)
    try:
        leaders = Counter(p["leader_id"] for t in admin.describe_topics(topics)
                          for p in t["partitions"])
    finally:
        admin.close()
    candidates = [n.id for n in cluster.nodes(settings) if n.id not in spare]
    return max(candidates, key=lambda n: (leaders[n], -n))


def live_brokers(settings: Settings) -> set[int]:
    """The brokers the controller counts as live (a dead one until it is fenced, seconds
    after it died)."""
    admin = kafka.make_admin(settings)
    try:
        return {b["broker_id"] for b in admin.describe_cluster()["brokers"]
                if not b.get("is_fenced")}
    finally:
        admin.close()


def coordinator(settings: Settings, group: str) -> int:
    """The broker coordinating ``group``, as the official tool reports it."""
    out = subprocess.run(
        [str(KAFKA_TOOL), "kafka-consumer-groups", "--bootstrap-server", settings.kafka_bootstrap,
         "--describe", "--group", group, "--state"],
        capture_output=True, text=True, timeout=120, check=True,
        env={"PATH": "/usr/bin:/bin", "MAILROOM_STATE_DIR": str(settings.state_path)},
    ).stdout
    found = re.search(r"127\.0\.0\.1:\d+\s+\((\d+)\)", out)
    assert found, f"no coordinator in:\n{out}"
    return int(found.group(1))
