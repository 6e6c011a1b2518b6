"""A rebalance that outlasts the poll that began it still ends in an assignment.

The ingest process polls its group between other work (reading mailboxes, starting passes),
and its revocation waits for the passes in hand: the poll that starts a rebalance often ends
before the join does. The join must be applied by a later poll — not lost, leaving the process
out of its group with no mailboxes (the fault :mod:`mailroom.groupjoin` mends)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from kafka.admin import NewPartitions

from ingest.assignment import Assignment, group_id
from mailroom.db import connect
from mailroom.kafka import Consumer, consumer_config, make_admin
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

PASS_IN_HAND_S = 1.5  # how long the revocation waits for the (simulated) pass in hand
OTHER_WORK_S = 1.0  # the main loop's work between two polls


def _poll_until(assignment: Assignment, done: Callable[[], bool], what: str,
                timeout_s: float = 60) -> None:
    """Poll as ingest's main loop does: a short poll, then other work, again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assignment.poll(200)
        if done():
            return
        threading.Event().wait(OTHER_WORK_S)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s; partitions "
                         f"{assignment.partitions()}, token {assignment.token}")


def test_a_slow_revocation_still_leads_to_a_new_assignment(
    db_settings: Settings, db: psycopg.Connection, topics: Settings
) -> None:
    topic = db_settings.topic("mailboxes")
    # The leader notices a change of its topics' partitions at its next metadata refresh.
    consumer = Consumer(**consumer_config(db_settings, group_id(db_settings), "test-slow"),
                        metadata_max_age_ms=500)
    with connect(db_settings, autocommit=True) as token_conn:
        assignment = Assignment(db_settings, consumer, token_conn)
        revocations: list[float] = []

        def passes_stopped() -> None:  # as the runner's: a pass in hand finishes its batch
            revocations.append(time.monotonic())
            threading.Event().wait(PASS_IN_HAND_S)

        assignment.on_revoke = passes_stopped
        consumer.subscribe([topic], listener=assignment)
        try:
            six = list(range(db_settings.topic_partitions))
            _poll_until(assignment, lambda: assignment.partitions() == six
                        and assignment.token is not None, "the first assignment")
            first_token = assignment.token
            assert first_token is not None
            seen = len(revocations)

            admin = make_admin(db_settings)
            try:
                admin.create_partitions({topic: NewPartitions(2 * len(six))})
            finally:
                admin.close()
            twelve = list(range(2 * len(six)))
            _poll_until(assignment, lambda: assignment.partitions() == twelve
                        and assignment.token is not None, "the assignment after the rebalance")
            assert len(revocations) > seen  # the rebalance did revoke, slowly
            assert assignment.token is not None and assignment.token > first_token
        finally:
            consumer.close()
