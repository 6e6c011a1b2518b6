"""An ingest process left without partitions while its group has one for it joins again
(:mod:`mailroom.groupwatch`); one that is idle because the group has more members than
partitions is left alone. On the real broker: a partition added to the mailboxes topic is seen
by the group's leader only at its next metadata refresh (minutes away), so the second member
sits without partitions until its watchdog makes the group rebalance."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg
import pytest
from kafka.admin import NewPartitions
from prometheus_client import CollectorRegistry

from ingest.assignment import Assignment, group_id
from mailroom.console.doctor import check_groups
from mailroom.db import connect
from mailroom.groupwatch import shares
from mailroom.kafka import make_admin
from mailroom.settings import Settings
from mailroom.topics import ensure_topics, topic_specs

pytestmark = pytest.mark.integration

REJOIN_AFTER_S = 5


def _poll_until(members: list[Assignment], done: Callable[[], bool], what: str,
                timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for m in members:
            m.poll(200)
        if done():
            return
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s; partitions "
                         f"{[m.partitions() for m in members]}")


def test_a_member_without_partitions_joins_again_when_the_group_has_one_for_it(
    db_settings: Settings, db: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    settings = db_settings.replace(topic_partitions=1, kafka_unassigned_rejoin_s=REJOIN_AFTER_S)
    admin = make_admin(settings)
    try:
        ensure_topics(admin, topic_specs(settings))
    finally:
        admin.close()
    topic, group = settings.topic("mailboxes"), group_id(settings)
    caplog.set_level(logging.WARNING, logger="mailroom.groupwatch")

    with connect(settings, autocommit=True) as tokens_a, \
            connect(settings, autocommit=True) as tokens_b:
        a = Assignment.join(settings, tokens_a, "test-a")
        b: Assignment | None = None
        try:
            _poll_until([a], lambda: a.partitions() == [0], "A holds the only partition")
            b = Assignment.join(settings, tokens_b, "test-b")
            registry = CollectorRegistry()
            b.watchdog.export(registry, "ingest")
            bb = b

            def both_in_group() -> bool:
                admin = make_admin(settings)
                try:
                    return (len(shares(admin, group)) == 2 and a.partitions() == [0]
                            and not bb.partitions() and a.token is not None)
                finally:
                    admin.close()

            _poll_until([a, b], both_in_group, "A and B in the group, B without partitions")
            # Two members, one partition: B is idle by design and stays as it is.
            started = time.monotonic()
            _poll_until([a, b], lambda: time.monotonic() - started > 2 * REJOIN_AFTER_S
                        and b.watchdog.since is not None
                        and time.monotonic() - b.watchdog.since < REJOIN_AFTER_S,
                        "B's watchdog looked at the group at least once")
            assert b.watchdog.rejoins == 0 and not b.partitions()

            assert [f for f in check_groups(settings) if f.level != "OK"] == []

            admin = make_admin(settings)
            try:
                admin.create_partitions({topic: NewPartitions(2)})
                deadline = time.monotonic() + 30
                while (len(admin.describe_topics([topic])[0]["partitions"]) < 2
                       and time.monotonic() < deadline):  # every broker's metadata knows it
                    time.sleep(0.2)
            finally:
                admin.close()
            # Not polled meanwhile, so not joined again yet: the doctor names B.
            warned = [f.detail for f in check_groups(settings) if f.level == "WARN"]
            assert len(warned) == 1 and "test-b" in warned[0], warned
            _poll_until([a, b], lambda: bb.partitions() == [1] and a.partitions() == [0],
                        "B joins again and is given the new partition")
            assert b.watchdog.rejoins >= 1
            assert registry.get_sample_value("mailroom_group_rejoins_total",
                                             {"stage": "ingest"}) == b.watchdog.rejoins
            assert registry.get_sample_value("mailroom_group_unassigned_seconds",
                                             {"stage": "ingest"}) == 0
            assert any("joining the group again" in r.getMessage() for r in caplog.records)
        finally:
            a.close()
            if b is not None:
                b.close()
