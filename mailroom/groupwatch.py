"""A group member left without partitions notices it and joins its group again.

A member may end up in its group with nothing assigned although the group has a partition for
it: a join the client lost (see :mod:`mailroom.groupjoin`), or a leader that has not yet seen
partitions added to a topic (it looks at its next metadata refresh, minutes away). The process
then polls on, healthy by every other measure, and does no work. :class:`Watchdog`, asked after
each poll, notices that state once it has lasted ``kafka_unassigned_rejoin_s``: it asks the
broker how many members the group has, and when there are no more members than partitions it
logs a warning, counts it (``mailroom_group_rejoins_total``) and joins again (unsubscribe,
subscribe: a rebalance in which the leader assigns afresh). A member that is idle because the
group has more members than partitions is left alone.

A member may also stay *joining* for good (a join the client lost in a way the mend does not
see; seen once with brokers killed): no rebalance lasts longer than the group's rebalance
timeout (the max poll interval) plus a session timeout, so a member still not in a stable
group after that joins again the same way.

:func:`shares` (each member's partition count, as the broker has it) serves the watchdog and
``mailroom doctor``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import MemberState
from prometheus_client import CollectorRegistry, Counter, Gauge

from mailroom.kafka import make_admin
from mailroom.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Share:
    """One member of a group and how many partitions the broker says it holds."""

    member_id: str
    client_id: str
    partitions: int


def shares(admin: Any, group: str) -> list[Share]:
    """The members of ``group`` with their assigned partition counts (raises what the admin
    client raises)."""
    described = admin.describe_groups([group]).get(group, {})
    return [Share(str(m.get("member_id", "")), str(m.get("client_id", "")),
                  _count(m.get("member_assignment")))
            for m in described.get("members") or []]


def starved(admin: Any, group: str, topics: Iterable[str]) -> list[Share]:
    """The members of ``group`` holding no partitions although the group has no more members
    than ``topics`` have partitions (empty: none, or an idle member is there by design)."""
    members = shares(admin, group)
    partitions = partition_count(admin, topics)
    if not partitions or len(members) > partitions:
        return []
    return [m for m in members if not m.partitions]


def partition_count(admin: Any, topics: Iterable[str]) -> int:
    """How many partitions ``topics`` have, as the brokers have them now."""
    return sum(len(t.get("partitions") or ()) for t in admin.describe_topics(list(topics)))


def _count(assignment: Any) -> int:
    """Partitions in a decoded member assignment (object or dict form; raw bytes: none)."""
    if hasattr(assignment, "partitions"):
        return len(list(assignment.partitions()))
    if isinstance(assignment, dict):  # kafka-python 3: [{"topic": ..., "partitions": [...]}]
        return sum(len(a.get("partitions") or ()) if isinstance(a, dict) else len(a[1])
                   for a in assignment.get("assigned_partitions") or [])
    return 0


class Watchdog:
    """Asked after every poll of ``consumer`` (subscribed to ``topics`` with ``listener``)."""

    def __init__(self, settings: Settings, consumer: KafkaConsumer, topics: Iterable[str],
                 listener: Any = None,
                 held: Callable[[], Collection[Any]] | None = None) -> None:
        self.settings = settings
        self.consumer = consumer
        self.topics = list(topics)
        self.listener = listener
        self.after_s = float(settings.kafka_unassigned_rejoin_s)
        # What this member holds; by default the consumer's assignment (a caller whose view
        # of its partitions is its own, like ingest's, passes that).
        self.held = held or consumer.assignment
        self.since: float | None = None  # without partitions since (monotonic)
        self.joining_since: float | None = None  # not in a stable group since (monotonic)
        # Longer than any rebalance may last (the broker's rebalance timeout is the members'
        # max poll interval; a member that died meanwhile is dropped after its session).
        self.stuck_after_s = (settings.kafka_max_poll_interval_ms
                              + settings.kafka_session_timeout_ms) / 1000 if self.after_s else 0.0
        self.rejoins = 0
        self._rejoins: Any = None
        self._unassigned: Any = None

    def export(self, registry: CollectorRegistry, stage: str) -> None:
        """Export ``mailroom_group_rejoins_total`` and ``mailroom_group_unassigned_seconds``
        on ``registry`` (the stage's own)."""
        self._rejoins = Counter("mailroom_group_rejoins", "Joined the consumer group again "
                                "after too long without partitions.", ["stage"],
                                registry=registry).labels(stage)
        self._unassigned = Gauge("mailroom_group_unassigned_seconds", "How long this member "
                                 "has held no partitions (0: it holds some).", ["stage"],
                                 registry=registry).labels(stage)

    def check(self, now: float | None = None) -> bool:
        """Join again if this member has held no partitions too long while the group has one
        for each member. Returns True when it did."""
        now = time.monotonic() if now is None else now
        if not self._stable():
            self.since = None  # a rebalance under way is not "left without": it may assign
            if self.joining_since is None:
                self.joining_since = now
            elif self.stuck_after_s and now - self.joining_since >= self.stuck_after_s:
                log.warning("group %s: this member has been joining for %.0f s, longer than a "
                            "rebalance may last: joining the group again",
                            self.consumer.config["group_id"], now - self.joining_since)
                self.joining_since = now
                self._rejoin()
                return True
            return False
        self.joining_since = None
        if self.held():
            self.since = None
            if self._unassigned is not None:
                self._unassigned.set(0)
            return False
        if self.since is None:
            self.since = now
        if self._unassigned is not None:
            self._unassigned.set(now - self.since)
        if not self.after_s or now - self.since < self.after_s:
            return False
        self.since = now  # whatever is decided below, look again only after another while
        group = str(self.consumer.config["group_id"])
        try:
            partitions, members = self._sizes(group)
        except Exception as exc:  # noqa: BLE001 - the broker away: nothing to decide on now
            log.warning("group %s: no partitions for %.0f s; the group's size could not be "
                        "read (%s)", group, self.after_s, exc)
            return False
        if not partitions or members > partitions:
            return False  # an idle member of a group with more members than partitions
        log.warning("group %s: this member has held no partitions for %.0f s although the "
                    "group has %d partition(s) for %d member(s): joining the group again",
                    group, self.after_s, partitions, members)
        self._rejoin()
        return True

    def _rejoin(self) -> None:
        self.rejoins += 1
        if self._rejoins is not None:
            self._rejoins.inc()
        self.consumer.unsubscribe()
        self.consumer.subscribe(self.topics, listener=self.listener)

    def _stable(self) -> bool:
        """In the group and not rebalancing (kafka-python's member state)."""
        state = getattr(self.consumer.group_metadata(), "state", MemberState.STABLE)
        return bool(state == MemberState.STABLE)

    def _sizes(self, group: str) -> tuple[int, int]:
        """The topics' partitions and the group's members, as the brokers have them now (not
        this consumer's metadata: it may be as stale as the leader's)."""
        admin = make_admin(self.settings, client_id="mailroom-groupwatch")  # rarely needed
        try:
            return partition_count(admin, self.topics), len(shares(admin, group))
        finally:
            admin.close()
