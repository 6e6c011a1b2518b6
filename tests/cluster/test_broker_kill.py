"""Brokers SIGKILLed under the four stage processes while mail is on its way, on the
three-broker cluster (replication factor 3, ``min.insync.replicas=2``, producers at acks=all):
one broker killed mid-run and started again, then — once it is back in every partition's
in-sync replicas — another. No stage exits, every stage carries on, and the exact checks of the
chaos suite hold: every mail exactly one activity, no duplicate rows, no dead letters, lag 0,
nothing unacknowledged on the mail server.

The mail comes in two halves, the second laid once the first victim is back in sync, and each
kill comes as soon as ingest has published mail of its half: mail is on its way through
unwrap, route and persist at both kills however fast the machine is. Each victim is the broker
that leads the most partitions of the run's topics at that moment, so a kill always moves
leadership under the producers and consumers. The stages' ``/readyz`` is
watched throughout; whether a stage reported itself degraded depends on where its requests were
when the broker died, so it is reported, not required — but every stage must be ready again at
the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import socket
import threading
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from brokers import busiest_leader, live_brokers, under_replicated
from chaoslib import checks, mail, seed
from chaoslib.drive import activities, wait_drained, wait_for
from chaoslib.preconditions import skip_unless_seedable
from chaoslib.stages import STAGES, Stages

from mailroom.console.ops.groups import Cluster
from mailroom.console.stack import cluster, dovecot
from mailroom.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

MAILS = 600  # two halves of 300
KILLS = 2
LANDING_TIMEOUT_S = 180.0  # the first activities, then more while a broker is down
IN_SYNC_TIMEOUT_S = 120.0
FENCED_TIMEOUT_S = 60.0  # broker.session.timeout.ms is 9 s
DRAIN_TIMEOUT_S = 240.0
STALL_TIMEOUT_S = 90.0


class Readiness:
    """Polls every stage's ``/readyz`` in a thread: how often each said 503 (degraded, or out
    of its group) after it had first been ready."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.not_ready: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.was_ready: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def code(self, stage: str) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[stage]}/readyz",
                                        timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None  # not listening (yet)

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            for stage in self.ports:
                code = self.code(stage)
                if code == 200:
                    self.was_ready.add(stage)
                if code is not None and stage in self.was_ready:
                    self.answered[stage] += 1
                    if code != 200:
                        self.not_ready[stage] += 1

    def __enter__(self) -> Readiness:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nothing_lost_doubled_or_stuck_when_brokers_are_killed(
    kafka_cluster: Settings, tmp_path: Path,
) -> None:
    skip_unless_seedable(kafka_cluster)
    w = seed.world(kafka_cluster,
                   mail.plan_mails(MAILS, random.SystemRandom().randrange(10**6)))
    run_topics = [w.settings.topic(role) for role in ("raw", "unwrapped", "actions", "trace",
                                                      "dlq", "mailboxes")]
    halves = (w.mails[:MAILS // 2], w.mails[MAILS // 2:])
    ports = {stage: free_port() for stage in STAGES}
    stages = Stages(w.settings, tmp_path / "logs", metrics_ports=ports)
    figures: list[str] = []
    try:
        seed.create(dataclasses.replace(w, mails=halves[0]))
        with Cluster(w.settings) as groups, Readiness(ports) as readiness:
            stages.start_all()
            laid, published, killed = len(halves[0]), 0, set()
            for n in range(1, KILLS + 1):
                if n > 1:
                    seed.write_maildir(dovecot.maildir(w.base, w.login), halves[n - 1])
                    laid += len(halves[n - 1])
                wait_for(f"mail of half {n} on the raw topic",
                          lambda before=published: checks.topic_records(
                              groups, w.settings.topic("raw")) > before,
                          stages, LANDING_TIMEOUT_S)
                published = checks.topic_records(groups, w.settings.topic("raw"))
                landed = activities(w) or 0
                victim = busiest_leader(w.settings, run_topics, killed)
                killed.add(victim)
                cluster.kill(w.base, victim)
                at = stages.elapsed()
                # Two brokers of three hold every partition's quorum: the pipeline goes on.
                wait_for(f"activity past {landed} with broker {victim} down",
                          lambda past=landed, target=laid: (activities(w) or 0)
                          > min(past, target - 1), stages, LANDING_TIMEOUT_S)
                # Down for good, as far as the cluster can tell: fenced, its partitions led
                # by the others.
                wait_for(f"broker {victim} fenced",
                          lambda v=victim: v not in live_brokers(w.settings), stages,
                          FENCED_TIMEOUT_S)
                fenced = stages.elapsed()
                during = (activities(w) or 0) - landed
                cluster.up(w.base, cluster.DEFAULT_BROKERS)
                back = stages.elapsed()
                wait_for(f"broker {victim} back in every in-sync replica set",
                          lambda: not under_replicated(w.settings), stages, IN_SYNC_TIMEOUT_S)
                figures.append(
                    f"kill {n}: broker {victim} at +{at:.1f} s with {landed} of {laid} laid "
                    f"stored; fenced {fenced - at:.1f} s later, {during} more stored by then; "
                    f"serving again {back - at:.1f} s after the kill, in sync "
                    f"{stages.elapsed() - back:.1f} s later")
            drained, waited, progress = wait_drained(w, stages, groups, DRAIN_TIMEOUT_S,
                                                     stall_s=STALL_TIMEOUT_S)
            assert drained, f"not drained after the broker kills: {progress.summary()}"
            failed = [c for c in checks.run_all(w, stages, groups) if not c.ok]
            assert not failed, "\n".join(f"{c.name}: {c.detail}" for c in failed)
            figures.append(f"drained at +{stages.elapsed():.1f} s ({waited:.1f} s after the "
                           "last broker was back in sync); "
                           f"{checks.topic_records(groups, w.settings.topic('raw'))} raw records "
                           f"for {MAILS} mails")
            wait_for("every stage ready again",
                      lambda: all(readiness.code(s) == 200 for s in STAGES), stages, 60.0)
            figures.append(f"/readyz not ready (polls): {dict(readiness.not_ready)} of "
                           f"{dict(readiness.answered)}")
    finally:
        codes = stages.stop()
        with contextlib.suppress(Exception):
            seed.remove(w)
        # A run that failed between a kill and its restart leaves the cluster whole for the
        # tests after it.
        with contextlib.suppress(Exception):
            cluster.up(w.base, cluster.DEFAULT_BROKERS)
        print("\n".join(["", *figures]))  # shown with -s or -rP: the run's figures
    assert codes == {s: 0 for s in codes}, f"SIGTERM at the end must exit 0: {codes}"
