"""ReferenceData: the in-memory snapshot of CRM records route decides with.

Loaded from PostgreSQL by :mod:`route.loader` (I/O at the edge) and passed into the pure
:func:`route.plan.plan`, so planning needs no database and a test builds one by hand.
Records are named ``kind:id`` everywhere a plan mentions them (:class:`RecordRef`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from route.privacy import Privacy

#: Party resolution precedence: a user beats a contact beats an account, and so on.
PRECEDENCE: tuple[str, ...] = ("user", "contact", "account", "lead", "queue")
RECORD_KINDS: frozenset[str] = frozenset(PRECEDENCE)


@dataclass(frozen=True, slots=True, order=True)
class RecordRef:
    kind: str  # user, queue, contact, account, lead
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> RecordRef:
        kind, sep, ident = text.partition(":")
        if not sep or kind not in RECORD_KINDS or not ident:
            raise ValueError(
                f"{text!r} is not a record reference KIND:ID "
                f"(KIND one of {', '.join(PRECEDENCE)})"
            )
        return cls(kind, ident)


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """One email-enabled record that has an address."""

    record: RecordRef
    owner: str | None = None  # owning user's id (contacts, accounts, leads)
    customer: RecordRef | None = None  # the customer it stands for: a contact's account, etc.


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: str
    address: str
    owner: RecordRef | None  # None for a forward mailbox: the forwarding user owns each copy


@dataclass(frozen=True)
class ReferenceData:
    #: lower-cased address → every record that has it
    addresses: Mapping[str, tuple[AddressMatch, ...]] = field(default_factory=dict)
    #: mailbox id → mailbox
    mailboxes: Mapping[str, Mailbox] = field(default_factory=dict)
    #: never-track lists, the Sensitivity setting and the erasure list (route/privacy.py)
    privacy: Privacy = field(default_factory=Privacy)

    def matches(self, address: str) -> tuple[AddressMatch, ...]:
        return self.addresses.get(address.strip().lower(), ())

    def is_own_address(self, address: str) -> bool:
        """Is this one of our users', queues' or monitored mailboxes' addresses? (loops)"""
        address = address.strip().lower()
        if any(m.record.kind in ("user", "queue") for m in self.matches(address)):
            return True
        return any(mb.address.lower() == address for mb in self.mailboxes.values())
