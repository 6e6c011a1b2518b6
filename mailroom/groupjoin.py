"""A group join that a short poll cannot lose: kafka-python 3's join, mended.

kafka-python 3 runs a JoinGroup → SyncGroup round trip as a task on its I/O thread, awaited
by ``consumer.poll`` for as long as the poll's timeout allows; a poll that gives up leaves the
task in flight for the next poll. But a task that *finishes* between two polls is lost:

- the next poll sees it done and sends a fresh JoinGroup instead of applying the result —
  a new rebalance of the whole group, every member rejoining again (a slow eager rebalance
  that repeats until one round happens to fit inside one poll), or
- when the rebalance was started by the leader's metadata check (its partition snapshot
  changed), the finished task's assignment already made the snapshot current again, so the
  next poll finds nothing to rejoin: the assignment is never applied, heartbeats stay off,
  and the broker drops the member after the session timeout. The process polls on for good
  with no partitions and is not in the group any more.

A poll runs out of time during a join easily: a rebalance listener that takes a moment (ingest
waits for the passes in hand), a short poll (``poll(0)`` between batches), or a busy machine.
The mend below applies a join that finished between polls and counts a join in flight as a
rejoin still to do, so the next poll always completes what the last one started.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaConsumer
from kafka.coordinator.consumer import ConsumerCoordinator
from kafka.structs import MemberState

log = logging.getLogger(__name__)


class MendedCoordinator(ConsumerCoordinator):
    """kafka-python's consumer coordinator with a join that survives the end of a poll."""

    def need_rejoin(self) -> bool:
        # A join still in flight, or finished and not yet applied, is a rejoin to complete.
        return self._join_task is not None or bool(super().need_rejoin())

    async def join_group_async(self, timeout_ms: Any = None) -> bool:
        task = self._join_task
        if task is not None and task.is_done and task.succeeded():
            self._join_task = None
            if self.state is MemberState.REBALANCING:  # else reset meanwhile: join afresh
                log.info("group %s: applying the join that finished after the last poll "
                         "(generation %s)", self.group_id, self._generation.generation_id)
                with self._lock:
                    self.rejoining = False
                    self.rejoin_needed = False
                    self.state = MemberState.STABLE
                    self._enable_heartbeat()
                await self._on_join_complete_async(
                    self._generation.generation_id, self._generation.member_id,
                    self._generation.protocol, task.value)
                if not self.need_rejoin():
                    return True
        return bool(await super().join_group_async(timeout_ms))


def mend(consumer: KafkaConsumer) -> KafkaConsumer:
    """Give ``consumer`` (a group member) the mended join; a consumer without a group is left
    as it is."""
    coordinator = getattr(consumer, "_coordinator", None)
    if type(coordinator) is ConsumerCoordinator:
        # The coordinator is made inside KafkaConsumer.__init__; its class is swapped for the
        # subclass (no state of its own), the one way in without copying the constructor.
        coordinator.__class__ = MendedCoordinator
    return consumer
