"""Looking at the three-broker cluster from a test: who leads, who coordinates, who is in sync."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter

from mailroom import kafka
from mailroom.settings import Settings
from mailroom.stack import cluster
from mailroom.stack.kafka import REPO

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


def wait_in_sync(settings: Settings, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while lagging := under_replicated(settings):
        assert time.monotonic() < deadline, f"not in sync after {timeout_s:.0f} s: {lagging}"
        time.sleep(0.5)


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
