"""The typed steps of a plan and their conditions: one dataclass per kind (docs/plans.md).

Each class says what its step needs, with real types (a time is a ``datetime``, a participant
list a tuple, a rate limit an ``int``); ``kind`` is the name the plan schema and the docs use.
A step that is applied only when a condition holds carries the condition its kind allows:
:class:`CreateContact` always :class:`AddressUnknown`, :class:`UpsertEmailActivity` a
:class:`Correlates` or none. On the wire they travel as the schema's generic ``Step`` and
``Condition`` records (:mod:`mailroom.records.params` converts; :mod:`mailroom.records.action`
registers the conversion with the Avro mapping).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from mailroom.records.base import optional_utc_millis, set_field

# --- conditions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Correlates:
    """True when one of the plan's correlation candidates resolves to a stored activity."""

    kind: ClassVar[str] = "correlates"
    otherwise: str = ""  # readable reason recorded when the condition is false


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressUnknown:
    """True when no stored record has the address."""

    kind: ClassVar[str] = "address_unknown"
    address: str
    otherwise: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginalTracked:
    """True when an activity with the bounced original's Message-ID is stored."""

    kind: ClassVar[str] = "original_tracked"
    message_id: str
    otherwise: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRules:
    """The case rules (reopen window, rate limit), decided in the email's own time."""

    kind: ClassVar[str] = "case_rules"
    sender: str = ""
    sent_at: datetime | None = None
    reopen_window_seconds: int = 0
    rate_limit_cases: int = 0  # 0: no limit
    rate_limit_window_seconds: int = 0
    otherwise: str = ""

    def __post_init__(self) -> None:
        set_field(self, "sent_at", optional_utc_millis(self.sent_at))


AnyCondition = Correlates | AddressUnknown | OriginalTracked | CaseRules

CONDITION_TYPES: dict[str, type[AnyCondition]] = {
    c.kind: c for c in (Correlates, AddressUnknown, OriginalTracked, CaseRules)
}


# --- steps, in the order persist applies them ---------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Skip:
    """The email is not tracked; ``rule`` says which question decided, ``reason`` why."""

    kind: ClassVar[str] = "skip"
    key: str
    reason: str = ""
    rule: str = ""
    #: Claim-check blobs of mail whose content must not be kept (privacy): persist deletes
    #: those no stored attachment uses. A reader that predates it ignores the param.
    blobs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class UpsertEmailActivity:
    """The email activity itself, with what route worked out about it."""

    kind: ClassVar[str] = "upsert_email_activity"
    key: str
    condition: Correlates | None = None  # Correlates: only "replies" accepted the email
    receiving_mailbox: str = ""
    accepting_owner: str = ""
    direction: str = ""
    copy_kind: str = ""
    sent_at: datetime | None = None
    sender: str = ""
    thread_root: str = ""
    subject_hash: str = ""
    participants: tuple[str, ...] = ()
    customer: str = ""
    automated: str = ""  # why the email counts as automated mail; "" for a person's
    case_rule: str = ""

    def __post_init__(self) -> None:
        set_field(self, "sent_at", optional_utc_millis(self.sent_at))
        set_field(self, "participants", tuple(self.participants))


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateContact:
    """A contact for an unknown sender's address, named from the display name."""

    kind: ClassVar[str] = "create_contact"
    key: str
    condition: AddressUnknown
    address: str
    name: str = ""
    owner: str = ""  # the user who owns the new contact, or ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkParty:
    """One party (sender, recipient) of the activity and the record its address names."""

    kind: ClassVar[str] = "link_party"
    key: str
    role: str
    address: str
    name: str = ""
    record: str = ""  # 'kind:id', or "" when unresolved
    outcome: str = ""
    detail: str = ""
    contact_step: str = ""  # the key of the create_contact step whose contact this party is


@dataclass(frozen=True, slots=True, kw_only=True)
class SetRegarding:
    """The activity inherits the regarding record of the thread it correlates with."""

    kind: ClassVar[str] = "set_regarding"
    key: str
    condition: Correlates


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkDeliveryFailed:
    """A bounce marks its original's delivery to ``recipient`` failed."""

    kind: ClassVar[str] = "mark_delivery_failed"
    key: str
    condition: OriginalTracked
    message_id: str
    recipient: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateOrUpdateCase:
    """A case for the email (or its thread's case updated or reopened), by the case rules."""

    kind: ClassVar[str] = "create_or_update_case"
    key: str
    condition: CaseRules
    queue: str
    rule_item: str = ""
    title: str = ""
    customer: str = ""
    origin: str = ""  # the dedupe key of the email that opens the case


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateQueueItem:
    """A queue item for the activity in the queue whose rule item fired."""

    kind: ClassVar[str] = "create_queue_item"
    key: str
    queue: str
    rule_item: str = ""


AnyStep = (Skip | UpsertEmailActivity | CreateContact | LinkParty | SetRegarding
           | MarkDeliveryFailed | CreateOrUpdateCase | CreateQueueItem)

#: Step classes by kind, in the order persist applies them within a plan.
STEP_TYPES: dict[str, type[AnyStep]] = {
    s.kind: s for s in (Skip, UpsertEmailActivity, CreateContact, LinkParty, SetRegarding,
                        MarkDeliveryFailed, CreateOrUpdateCase, CreateQueueItem)
}
