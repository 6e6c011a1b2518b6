"""A member that stays *joining* longer than any rebalance may last joins its group again.

The decision is the watchdog's alone, from what the consumer says of its state: here a consumer
object reports the states (the broker-facing case, a member left without partitions, is tested
on the real broker in the ingest tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka.structs import MemberState

from mailroom.groupwatch import Watchdog
from mailroom.settings import Settings


@dataclass
class Metadata:
    state: Any


@dataclass
class Member:
    """What the watchdog reads of a consumer, and the two calls it makes."""

    state: Any = MemberState.REBALANCING
    held: set[int] = field(default_factory=set)
    joins: int = 0
    config: dict[str, Any] = field(default_factory=lambda: {"group_id": "g"})

    def group_metadata(self) -> Metadata:
        return Metadata(self.state)

    def assignment(self) -> set[int]:
        return self.held

    def unsubscribe(self) -> None:
        self.state = MemberState.UNJOINED

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.joins += 1


SETTINGS = Settings(kafka_max_poll_interval_ms=60_000, kafka_session_timeout_ms=10_000,
                    kafka_unassigned_rejoin_s=120)


def test_a_member_joining_longer_than_a_rebalance_may_last_joins_again() -> None:
    member = Member()
    dog = Watchdog(SETTINGS, member, ["t"])  # type: ignore[arg-type]
    assert not dog.check(now=1000.0)
    assert not dog.check(now=1069.0)  # 69 s: a rebalance may still be under way
    assert dog.check(now=1070.0)  # 60 s poll interval + 10 s session: stuck
    assert member.joins == 1 and dog.rejoins == 1
    assert not dog.check(now=1100.0)  # the next look only after another while
    assert dog.check(now=1140.0)
    assert member.joins == 2


def test_a_member_that_reaches_a_stable_group_starts_counting_afresh() -> None:
    member = Member()
    dog = Watchdog(SETTINGS, member, ["t"])  # type: ignore[arg-type]
    dog.check(now=1000.0)
    member.state, member.held = MemberState.STABLE, {0}
    assert not dog.check(now=1050.0)
    member.state = MemberState.REBALANCING  # a new rebalance begins
    assert not dog.check(now=1060.0)
    assert not dog.check(now=1129.0)
    assert dog.check(now=1130.0)


def test_off_with_the_watchdog() -> None:
    member = Member()
    dog = Watchdog(SETTINGS.replace(kafka_unassigned_rejoin_s=0), member,  # type: ignore[arg-type]
                   ["t"])
    dog.check(now=0.0)
    assert not dog.check(now=10_000.0)
    assert member.joins == 0
