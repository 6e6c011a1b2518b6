"""What the pure unwrap function needs besides the message: configuration as plain data.

``UnwrapContext`` is built once per process (and again when the forwarders change) from the
settings and the forwarders read from configuration; it is never looked up from a global.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from mailroom.settings import Settings
from mailroom.stage.types import Rejection as Rejection  # the stage contract's one type
from unwrap.addresses import ascii_lower
from unwrap.limits import Limits


@dataclass(frozen=True)
class Forwarder:
    """Who forwards from one address: a user or a queue whose mailbox is set to "via this
    forward mailbox". Its forwards become that owner's mail (a queue's: queue items and cases
    by the queue's rules), exactly as if its own mailbox had been polled."""

    kind: str  # "user" | "queue"
    id: str
    #: the forwarder's mailbox's "process email from": originals that arrived before it are
    #: skipped (not part of who the forwarder is, so not compared)
    process_from: datetime | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


#: forward mailbox id -> {forwarder's address (ASCII lower case) -> the forwarder}. A plain
#: string value is a user id (the table's original form, still accepted).
Forwarders = Mapping[str, Mapping[str, "Forwarder | str"]]


def as_forwarder(value: Forwarder | str) -> Forwarder:
    return value if isinstance(value, Forwarder) else Forwarder("user", value)


class RawInput(Protocol):
    """What unwrap reads of a raw message; :class:`mailroom.records.RawMail` satisfies it."""

    @property
    def mailbox_id(self) -> str: ...
    @property
    def mailbox_address(self) -> str: ...
    @property
    def owner_kind(self) -> str: ...
    @property
    def owner_id(self) -> str | None: ...
    @property
    def folder(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def content(self) -> bytes | None: ...
    @property
    def server_date(self) -> datetime | None: ...
    @property
    def identity(self) -> str: ...


@dataclass(frozen=True)
class SourcePosition:
    """Where the raw record was read: copied into every Email for tracing and replay."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class UnwrapContext:
    forwarders: Forwarders = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    authserv_id: str = ""
    #: ids of forward mailboxes whose operator opted out of the Authentication-Results check
    #: (their receiving server cannot stamp results); every other forward needs a pass
    unchecked_forward_mailboxes: frozenset[str] = frozenset()
    non_forwarded: str = "reject"  # or "accept" (checked with the setting unwrap_non_forwarded)
    inline_forwards: bool = True
    #: forward mailbox id -> {address of a forwarder whose mailbox is not approved -> its state}
    unapproved_forwarders: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Addresses compare ASCII-case-insensitively: store the table folded once.
        object.__setattr__(self, "forwarders", {
            box: {ascii_lower(addr.strip()): as_forwarder(who) for addr, who in table.items()}
            for box, table in self.forwarders.items()
        })
        object.__setattr__(self, "unchecked_forward_mailboxes",
                           frozenset(self.unchecked_forward_mailboxes))
        object.__setattr__(self, "unapproved_forwarders", {
            box: {ascii_lower(addr.strip()): state for addr, state in table.items()}
            for box, table in self.unapproved_forwarders.items()
        })

    @classmethod
    def from_settings(cls, settings: Settings, forwarders: Forwarders | None = None,
                      unchecked: frozenset[str] = frozenset(),
                      unapproved: Mapping[str, Mapping[str, str]] | None = None
                      ) -> UnwrapContext:
        return cls(
            unapproved_forwarders=unapproved or {},
            forwarders=forwarders or {},
            limits=Limits.from_settings(settings),
            authserv_id=settings.unwrap_authserv_id,
            unchecked_forward_mailboxes=unchecked,
            non_forwarded=settings.unwrap_non_forwarded,
            inline_forwards=settings.unwrap_inline_forwards,
        )
