"""faust's end of table recovery, reordered so that no record is dropped (faust-streaming 0.15.3).

The bug (diagnosed with faust at DEBUG plus a trace of every record from aiokafka to the agent's
queue): ``Recovery.on_recovery_completed`` does, in this order,

1. resume the stream partitions (``unwrapped``, the events topic),
2. seek them to the committed offsets - one broker round trip, during which the fetcher, already
   running for the changelog restore, delivers the records it fetches into the agents' queues,
3. ``app.flow_control.resume()`` - which *clears every agent queue* (faust's topic queues are
   ``clear_on_resume``).

A record that reached a queue in step 2 and was not yet taken by the agent is thrown away in
step 3: never processed, never acknowledged, and the fetch position is past it, so this process
does not read it again. When it was the first record after the committed offset and a later
record of its partition is acknowledged, faust commits past it (``Consumer._new_offset`` lets
the acknowledged offsets start one above the committed offset): the record is lost for good.
When two or more were dropped, the commit stops at the hole and they wait for the next restart.
Records taken in step 2 are processed and then delivered again after the seek (the old double
counts; :mod:`mailroom.stats.counter` drops those).

Here step 3 comes first, while the stream partitions are still paused: the queues are cleared
when nothing of them can be in there, then the partitions are resumed, then seeked. Anything
delivered before the seek is processed (and again after it: dropped by the counted marks);
nothing is thrown away. Any record faust dropped before the resume (a fetch drained while the
partitions were paused) is read again because the seek comes after it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery

FAUST_VERSION = "0.15.3"  # the version whose on_recovery_completed this copies, reordered


class OrderedRecovery(Recovery):
    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """faust 0.15.3's method, with ``flow_control.resume()`` (which clears the agents'
        queues) before the stream partitions are resumed and seeked, not after."""
        app: Any = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callback_coros = [
            asyncio.ensure_future(table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]))
            for table in self.tables.values()
        ]
        if callback_coros:
            await asyncio.wait(callback_coros)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again app id %s param %s",
                             app.consumer_generation_id, generation_id)
            return
        # Clears the agents' queues: only now, while no stream partition is resumed.
        app.flow_control.resume()
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(),
                             timeout=app.conf.broker_request_timeout)
        self.completed.set()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class OrderedTableManager(TableManager):
    """faust's TableManager with :class:`OrderedRecovery` (``App(TableManager=...)``)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = OrderedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


def check_version() -> None:
    if faust.__version__ != FAUST_VERSION:
        raise RuntimeError(
            f"mailroom.stats.recovery reorders faust-streaming {FAUST_VERSION}'s "
            f"Recovery.on_recovery_completed; installed is {faust.__version__}: compare the "
            "method and update the copy (or drop it if faust fixed the order)")
