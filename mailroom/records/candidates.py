"""The typed correlation candidates: one dataclass per method, in the chain's order.

``value`` is what the method looks up (a Message-ID, a token number, a Thread-Index root, a
subject hash); the smart match adds the arguments that keep it inside one customer and one time
window. On the wire they travel as the plan schema's generic ``Candidate`` record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from mailroom.records.base import optional_utc_millis, set_field


@dataclass(frozen=True, slots=True)
class InReplyTo:
    method: ClassVar[str] = "in_reply_to"
    value: str  # the normalised Message-ID of the parent


@dataclass(frozen=True, slots=True)
class Token:
    method: ClassVar[str] = "token"
    value: str  # the token number, decimal without leading zeros


@dataclass(frozen=True, slots=True)
class References:
    method: ClassVar[str] = "references"
    value: str  # one normalised Message-ID of the References header


@dataclass(frozen=True, slots=True)
class ThreadIndex:
    method: ClassVar[str] = "thread_index"
    value: str  # base64 of the Outlook conversation's 22-byte header


@dataclass(frozen=True, slots=True, kw_only=True)
class Smart:
    method: ClassVar[str] = "smart"
    value: str  # the subject hash
    participants: tuple[str, ...] = ()
    min_shared: int = 1  # participants the parent must share
    customer: str = ""  # 'kind:id': smart matching never joins threads across customers
    since: datetime | None = None
    before: datetime | None = None

    def __post_init__(self) -> None:
        set_field(self, "participants", tuple(self.participants))
        set_field(self, "since", optional_utc_millis(self.since))
        set_field(self, "before", optional_utc_millis(self.before))


AnyCandidate = InReplyTo | Token | References | ThreadIndex | Smart

#: Candidate classes by method, in the correlation chain's order.
CANDIDATE_TYPES: dict[str, type[AnyCandidate]] = {
    c.method: c for c in (InReplyTo, Token, References, ThreadIndex, Smart)
}
