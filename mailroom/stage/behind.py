"""A unit's acknowledgement and commit taken behind the next unit's work.

A stage whose effects are records on topics (:class:`~mailroom.stage.commit.KafkaCommit`:
unwrap, route) used to end every poll batch waiting: the producer flushed the last slice's
outputs (compressed, sent, written by the broker with acks=all), then the offsets' commit went
to the group coordinator and back, then the next poll. Its worker children had nothing to do
all that time, 20–60 ms a batch of 500 — and unwrap is the stage the rest of the pipeline waits
for. Here the whole-batch unit ends once everything it produced is *sent*: the runner polls and
hands the children the next batch at once, and the unit is finished after that next unit's
work, when the producer has long had the broker's acknowledgement (its batches go after
``linger_ms`` without a flush). Only then is its commit sent — asynchronously, in order with the
ones before and after it (one coordinator connection).

Nothing weakens: an offset is still committed only after every record the unit produced (its
outputs, trace events and dead letters, each one's future checked) is acknowledged; a unit is
finished before anything else commits (a unit of one record, a stop, an idle poll, a
rebalance's revocation), so commits never go backwards; and a unit whose records failed is
redone from its first offsets, at least once like any redelivery. What is deferred is one unit
at most. Only for a pool of worker children (the runner cannot die of a record there): with a
handler in the runner's own process, the attempt counter must see each unit committed before
the next begins, or a record that kills the process would never be pinned
(:mod:`mailroom.attempts`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition

from mailroom.stage.outbox import Outbox

log = logging.getLogger(__name__)

Offsets = Mapping[TopicPartition, int]


@dataclass(frozen=True)
class Pending:
    """A unit sent and not yet committed: where its partitions started, where they commit to,
    and the futures of everything it produced."""

    first: Offsets
    offsets: Offsets
    sent: list[Any]


class Behind:
    """At most one unit whose acknowledgement and commit wait for the next unit's work."""

    def __init__(self, outbox: Outbox, commit: Callable[[Offsets], None],
                 commit_later: Callable[[Offsets], None], fault: Callable[[], None]) -> None:
        self.outbox = outbox
        self._commit = commit  # synchronous: the last unit before a wait, a stop, a revocation
        self._commit_later = commit_later  # asynchronous: a unit with another right behind it
        self._fault = fault  # the runner's after_produce fault point (tests kill there)
        self.pending: Pending | None = None

    def __bool__(self) -> bool:
        return self.pending is not None

    def defer(self, first: Offsets, offsets: Offsets) -> None:
        """The unit just handled is sent (its trace events too): finish the one before it, keep
        this one. Raises KafkaError when the one before failed (it is then given back by
        :meth:`give_back`; this one's sends are forgotten, and the redo sends them again)."""
        sent = self.outbox.hand_over()
        self._finish(self._commit_later)  # raises with it still kept: the earlier start wins
        self.pending = Pending(dict(first), dict(offsets), sent)

    def finish(self) -> None:
        """Flush, wait for the acknowledgement of the unit kept, commit it (synchronously)."""
        if self.pending is not None:
            self.outbox.flush()
            self._finish(self._commit)

    def _finish(self, commit: Callable[[Offsets], None]) -> None:
        pending = self.pending
        if pending is None:
            return
        self.outbox.wait(pending.sent)  # raises: the unit stays kept, to be given back
        self._fault()
        self.pending = None
        commit(pending.offsets)

    def give_back(self) -> dict[TopicPartition, int]:
        """Forget the unit kept (its records failed, or the work after it was given up); returns
        where its partitions start again. Its records are redelivered: at least once."""
        pending, self.pending = self.pending, None
        if pending is None:
            return {}
        log.warning("the records of the unit from %s are redone",
                    ", ".join(f"{tp.topic}/{tp.partition}@{o}" for tp, o in pending.first.items()))
        return dict(pending.first)


class FinishOnRevoke(ConsumerRebalanceListener):
    """The rebalance listener that finishes the unit kept before its partitions go (eager
    rebalancing revokes them all, and their next owner starts from the last commit)."""

    def __init__(self, behind: Behind, inner: Any = None) -> None:
        self.behind = behind
        self.inner = inner

    def on_partitions_revoked(self, revoked: Any) -> None:
        try:
            self.behind.finish()
        except Exception as exc:  # noqa: BLE001 - the next owner redelivers it: not fatal
            log.warning("the unit kept could not be finished before a rebalance (%s): its "
                        "records are redelivered", exc)
            self.behind.give_back()
        if self.inner is not None:
            self.inner.on_partitions_revoked(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        if self.inner is not None:
            self.inner.on_partitions_assigned(assigned)
