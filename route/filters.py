"""Track filters: does this mailbox owner want this email tracked at all?

One question per filter, answered per receiving mailbox; a message seen by several mailboxes is
accepted when any of them accepts, and the plan records which mailbox and owner accepted.
"replies" depends on other emails (is the parent tracked?), so it answers *conditionally*: the
activity is stored only if persist finds the correlation resolves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mailroom.records.email import Email
from route.config import RouteConfig, TrackFilter
from route.mail import norm, recipients
from route.privacy import screen
from route.reference import RecordRef, ReferenceData


class Verdict(StrEnum):
    ACCEPT = "accept"
    CONDITIONAL = "conditional"  # accepted if the email correlates to tracked mail
    REJECT = "reject"


@dataclass(frozen=True)
class Receiver:
    mailbox_id: str
    owner: RecordRef | None


@dataclass(frozen=True)
class FilterResult:
    verdict: Verdict
    receiver: Receiver | None
    filter: TrackFilter | None
    reason: str


def _counterparts(email: Email) -> list[str]:
    # Incoming mail is judged by who sent it; outgoing mail (Sent folder) by whom it went to.
    return recipients(email) if email.direction == "outgoing" else [norm(email.from_address)]


def excluded(email: Email, owner: RecordRef | None, reference: ReferenceData) -> str | None:
    """Asked before every other question: must this copy not be tracked at all, for privacy
    (erased, marked private, on a never-track list)? The reason, or None."""
    return screen(email, str(owner) if owner else None, reference.privacy)


def judge(
    email: Email, receiver: Receiver, config: RouteConfig, reference: ReferenceData,
    has_candidates: bool,
) -> FilterResult:
    """The one receiving mailbox's answer."""
    if receiver.owner is None:
        return FilterResult(Verdict.REJECT, receiver, None,
                            f"mailbox {receiver.mailbox_id} has no owner to track mail for")
    chosen = config.filter_for(receiver.owner)
    who = f"{receiver.owner} (mailbox {receiver.mailbox_id}) tracks {chosen.value}"
    if chosen is TrackFilter.ALL:
        return FilterResult(Verdict.ACCEPT, receiver, chosen, who)
    if chosen is TrackFilter.NONE:
        return FilterResult(Verdict.REJECT, receiver, chosen, f"{who}: no mail is tracked")
    if chosen is TrackFilter.REPLIES:
        if has_candidates:
            return FilterResult(Verdict.CONDITIONAL, receiver, chosen,
                                f"{who}: tracked if it replies to tracked mail")
        return FilterResult(
            Verdict.REJECT, receiver, chosen,
            f"{who}: not a reply (no In-Reply-To, tracking token, References or Thread-Index "
            "points at other mail)",
        )
    kinds = {"contact", "account", "lead"}
    if chosen is TrackFilter.EMAIL_ENABLED:
        kinds |= {"user", "queue"}
    for address in _counterparts(email):
        for match in reference.matches(address):
            if match.record.kind in kinds:
                return FilterResult(Verdict.ACCEPT, receiver, chosen,
                                    f"{who}: {address} is {match.record}")
    side = "no recipient" if email.direction == "outgoing" else "the sender"
    return FilterResult(Verdict.REJECT, receiver, chosen,
                        f"{who}: {side} is not a known {'/'.join(sorted(kinds))}")


def decide(
    email: Email, receivers: Sequence[Receiver], config: RouteConfig, reference: ReferenceData,
    has_candidates: bool,
) -> tuple[FilterResult, list[FilterResult]]:
    """The first unconditional acceptance, else the first conditional one, else a rejection
    that names every mailbox's reason. Returns (the result, every mailbox's answer)."""
    answers = [judge(email, r, config, reference, has_candidates) for r in receivers]
    for wanted in (Verdict.ACCEPT, Verdict.CONDITIONAL):
        for answer in answers:
            if answer.verdict is wanted:
                return answer, answers
    reason = "; ".join(a.reason for a in answers) or "no receiving mailbox"
    return FilterResult(Verdict.REJECT, None, None, reason), answers
