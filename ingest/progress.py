"""Which UID a folder's checkpoint may advance to — pure logic, no I/O.

The checkpoint is a promise: every message with a UID up to it is durably on the raw topic.
Acknowledgements come back from the broker in any order and some sends fail, so the checkpoint
moves only to the highest UID below which *every* fetched message was acknowledged. A failed
send holds it back; the message is fetched again on the next pass (a harmless repeat).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field


@dataclass
class UidProgress:
    """Tracks one batch of a folder: UIDs sent, UIDs the broker acknowledged."""

    start: int  # the checkpoint before this batch: everything <= start is already durable
    sent: list[int] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    # Dead-lettered without being fetched: the checkpoint passes them, no server action is owed
    # (flagging, moving or deleting mail that never reached the topic would lose it).
    passed: set[int] = field(default_factory=set)

    def send(self, uid: int) -> None:
        if uid <= self.start:
            raise ValueError(f"UID {uid} is not above the checkpoint {self.start}")
        self.sent.append(uid)

    def ack(self, uid: int) -> None:
        self.acked.add(uid)

    def fail(self, uid: int) -> None:
        self.failed.add(uid)

    def pass_over(self, uid: int) -> None:
        """The message was dead-lettered: the checkpoint may move past it."""
        self.send(uid)
        self.passed.add(uid)

    def checkpoint(self) -> int:
        """The highest UID the checkpoint may move to: the acknowledged prefix of the batch.

        UIDs between those sent (gaps from expunged mail) need no ack: nothing is there.
        """
        high = self.start
        for uid in sorted(self.sent):
            if uid not in self.acked and uid not in self.passed:
                break
            high = uid
        return high

    def acked_up_to_checkpoint(self) -> list[int]:
        """UIDs whose server-side action (flag, move, delete) may now be queued."""
        cp = self.checkpoint()
        return sorted(u for u in self.sent if u <= cp and u not in self.passed)


def pop3_new(server_uidls: dict[int, str], published: set[str]) -> list[tuple[int, str]]:
    """POP3: the (message number, UIDL) pairs not yet published, in server order.

    The checkpoint is a set, not a high-water mark: POP3 numbers are per session and UIDLs are
    opaque strings with no order.
    """
    return [(n, u) for n, u in sorted(server_uidls.items()) if u not in published]


#: Most message bytes one batch brings into memory (a 30 MB message still comes alone).
FETCH_BUDGET_BYTES = 64 * 1024 * 1024


def batches(uids: list[int], sizes: dict[int, int], max_count: int,
            max_bytes: int) -> list[list[int]]:
    """Consecutive batches of ``uids`` of at most ``max_count`` messages and ``max_bytes``
    (by the server's RFC822.SIZE), so a folder of large messages is never fetched into memory
    two hundred at a time. A single message above ``max_bytes`` is a batch of its own."""
    out: list[list[int]] = []
    current: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if current and (len(current) >= max_count or total + size > max_bytes):
            out.append(current)
            current, total = [], 0
        current.append(uid)
        total += size
    if current:
        out.append(current)
    return out


def fetch_groups(items: list[int], sizes: dict[int, int], max_count: int, max_bytes: int,
                 alone: Collection[int]) -> list[list[int]]:
    """:func:`batches`, except that every item in ``alone`` (a message suspected of failing its
    fetch) is a group of its own, in order: so the one that fails is known and counted."""
    out: list[list[int]] = []
    run: list[int] = []
    for item in items:
        if item in alone:
            out += batches(run, sizes, max_count, max_bytes)
            out.append([item])
            run = []
        else:
            run.append(item)
    return out + batches(run, sizes, max_count, max_bytes)
