"""``plan(email, reference, config) -> Plan``: the route stage's whole decision, pure.

Questions are asked in a fixed order — track filter, correlation, parties, automated mail,
queue rules — each answer recorded as a :class:`Decision`; a short table of step builders then
turns the answers into declarative steps (docs/plans.md). Nothing here touches a broker or a
database, and the same inputs always give the same plan, so replays re-derive it exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mailroom.records.action import Decision, Plan
from mailroom.records.candidates import AnyCandidate
from mailroom.records.email import Email
from mailroom.records.steps import (
    AddressUnknown,
    AnyStep,
    CaseRules,
    Correlates,
    CreateContact,
    CreateOrUpdateCase,
    CreateQueueItem,
    LinkParty,
    MarkDeliveryFailed,
    OriginalTracked,
    SetRegarding,
    Skip,
    UpsertEmailActivity,
)
from route import autoreply, cases, correlation, filters, parties, privacy
from route.config import RouteConfig
from route.mail import norm, owner_of, participants, subject_hash
from route.reference import RecordRef, ReferenceData

_DAY = 86_400


def _key(*parts: str) -> str:
    return "|".join(parts)


@dataclass(frozen=True)
class Answers:
    """What the questions answered: everything the step builders read."""

    email: Email
    config: RouteConfig
    receiver: filters.Receiver
    conditional: str  # why only replies to tracked mail are tracked; "" when all are
    owner: RecordRef | None  # whose filter accepted the email
    resolutions: list[parties.Resolution]
    sender: parties.Resolution | None
    customer: RecordRef | None
    candidates: list[AnyCandidate]
    automated: autoreply.Finding | None
    fired: cases.Fired | None

    @property
    def key(self) -> str:
        return self.email.dedupe_key

    @property
    def accepting(self) -> str:
        return str(self.owner) if self.owner else ""

    @property
    def contact_key(self) -> str:
        """The create_contact step's key when the plan creates the sender's contact, else ""."""
        sender, email = self.sender, self.email
        wants = self.config.create_contacts.get(self.accepting, False)
        if (sender is not None and sender.outcome == "unknown" and wants
                and email.direction == "incoming" and self.automated is None):
            return _key("contact", sender.address)
        return ""


def plan(
    email: Email, reference: ReferenceData, config: RouteConfig, encoded: bytes = b""
) -> Plan:
    """The plan for one copy of one email. ``encoded``: the Email as read from the topic."""
    decisions: list[Decision] = []
    key = email.dedupe_key
    receiver = filters.Receiver(email.delivery.mailbox_id, mailbox_owner(email, reference))
    if (private := filters.excluded(email, receiver.owner, reference)) is not None:
        return privacy.skip_plan(email, private)  # no content, no parties, no candidates
    switches = config.switches_for(receiver.mailbox_id, receiver.owner)

    # Parties first: the sender's customer guards smart matching.
    resolutions = parties.resolve_all(
        email, reference, receiver.owner, config.parties.max_matches
    )
    sender = next((r for r in resolutions if r.role == "from"), None)
    customer_side = sender if email.direction == "incoming" else next(
        (r for r in resolutions if r.role == "to"), None
    )
    customer = parties.customer_of(customer_side)

    candidates, notes = correlation.candidates(email, switches, config.token, customer)
    decisions.append(Decision(
        "correlation", "candidates" if candidates else "none",
        "; ".join([", ".join(f"{c.method}={c.value}" for c in candidates)] + notes).strip("; "),
    ))

    verdict, answers = filters.decide(email, [receiver], config, reference, bool(candidates))
    for answer in answers:
        decisions.append(Decision("filter", answer.verdict.value, answer.reason))
    base = dict(
        dedupe_key=key, content_hash=email.content_hash, email=encoded,
        receiving_mailbox=receiver.mailbox_id, message_id=email.message_id,
        correlation=candidates,
    )
    if verdict.verdict is filters.Verdict.REJECT:
        skip = Skip(key=key, reason=verdict.reason, rule="filter")
        return Plan(**base, steps=[skip], decisions=decisions)

    found = autoreply.automated(email, reference)
    decisions.append(Decision(
        found.rule if found else "autoreply", "automated" if found else "person",
        found.detail if found else "no auto-reply, bounce or loop marker",
    ))
    given = Answers(
        email=email, config=config, receiver=receiver,
        conditional=verdict.reason if verdict.verdict is filters.Verdict.CONDITIONAL else "",
        owner=verdict.receiver.owner if verdict.receiver else None,
        resolutions=resolutions, sender=sender, customer=customer, candidates=candidates,
        automated=found, fired=_queue_rule(email, receiver, sender, config, decisions),
    )
    steps = [step for _, build in BUILDERS for step in build(given, decisions)]
    return Plan(**base, accepting_owner=given.accepting, steps=steps, decisions=decisions)


Builder = Callable[[Answers, list[Decision]], list[AnyStep]]


def _activity(a: Answers, decisions: list[Decision]) -> list[AnyStep]:
    """The email activity itself; conditional when only "replies" accepted it."""
    email, found, fired = a.email, a.automated, a.fired
    return [UpsertEmailActivity(
        key=a.key,
        condition=Correlates(otherwise=f"not a reply to tracked mail ({a.conditional})")
        if a.conditional else None,
        receiving_mailbox=a.receiver.mailbox_id,
        accepting_owner=a.accepting,
        direction=email.direction,
        copy_kind=email.delivery.copy_kind,
        sent_at=email.date,
        sender=norm(email.from_address),
        thread_root=correlation.thread_root(email.thread_index)[0],
        subject_hash=subject_hash(email.subject, a.config.token),
        participants=tuple(participants(email)),
        customer=str(a.customer) if a.customer else "",
        automated=found.detail if found else "",
        case_rule=fired.label if fired and fired.item.create_case and not found else "",
    )]


def _contact(a: Answers, decisions: list[Decision]) -> list[AnyStep]:
    """A contact for an unknown sender, when the accepting owner's policy says so."""
    if not a.contact_key or a.sender is None:
        return []
    sender, owner = a.sender, a.owner
    decisions.append(Decision("parties.create_contact", "planned",
                              f"{a.accepting} creates contacts for unknown senders"))
    return [CreateContact(
        key=a.contact_key,
        condition=AddressUnknown(address=sender.address,
                                 otherwise=f"{sender.address} has a record by now"),
        address=sender.address, name=sender.name,
        owner=owner.id if owner and owner.kind == "user" else "",
    )]


def _parties(a: Answers, decisions: list[Decision]) -> list[AnyStep]:
    steps: list[AnyStep] = []
    contact_key = a.contact_key
    for res in a.resolutions:
        for record in res.records or (None,):
            steps.append(LinkParty(
                key=_key(a.key, res.role, res.address), role=res.role, address=res.address,
                name=res.name, record=str(record) if record else "", outcome=res.outcome,
                detail=res.detail, contact_step=contact_key if res.role == "from" else "",
            ))
        decisions.append(Decision(f"parties.{res.role}", res.outcome,
                                  f"{res.address}: {res.detail}"))
    return steps


def _regarding(a: Answers, decisions: list[Decision]) -> list[AnyStep]:
    """Regarding, inherited from whichever candidate resolves."""
    if not a.candidates:
        return []
    return [SetRegarding(key=a.key,
                         condition=Correlates(otherwise="no candidate thread is tracked"))]


def _bounces(a: Answers, decisions: list[Decision]) -> list[AnyStep]:
    """A failed-delivery bounce marks its original's delivery failed."""
    email = a.email
    if email.report.kind != "bounce":
        return []
    original = autoreply.bounced_original(email)
    steps: list[AnyStep] = []
    if original:
        for rcpt in email.report.failed_recipients or ("",):
            steps.append(MarkDeliveryFailed(
                key=_key(original, rcpt.lower()),
                condition=OriginalTracked(message_id=original,
                                          otherwise=f"the original {original} is not tracked"),
                message_id=original, recipient=rcpt.lower(), detail=email.report.detail or "",
            ))
    decisions.append(Decision("bounce", "linked" if original else "unlinkable",
                              original or "the bounce names no original Message-ID"))
    return steps


def _case(a: Answers, decisions: list[Decision]) -> list[AnyStep]:
    fired, found, email = a.fired, a.automated, a.email
    if fired is None or not fired.item.create_case:
        return []
    if found is not None:
        decisions.append(Decision("case", "not created",
                                  f"automated mail never opens a case ({found.detail})"))
        return []
    cs = a.config.cases
    return [CreateOrUpdateCase(
        key=_key("case", a.key),
        condition=CaseRules(
            sender=norm(email.from_address), sent_at=email.date,
            reopen_window_seconds=cs.reopen_window_days * _DAY,
            rate_limit_cases=cs.rate_limit_cases,
            rate_limit_window_seconds=cs.rate_limit_window_hours * 3600,
            otherwise="no case: see the evaluation's reason"),
        queue=fired.queue_id, rule_item=fired.label, title=email.subject or "(no subject)",
        customer=str(a.customer) if a.customer else "", origin=a.key,
    )]


def _queue_item(a: Answers, decisions: list[Decision]) -> list[AnyStep]:
    fired = a.fired
    if fired is None or not fired.item.create_queue_item:
        return []
    return [CreateQueueItem(key=_key("queue_item", fired.queue_id, a.key),
                            queue=fired.queue_id, rule_item=fired.label)]


#: The step builders, in the order the steps are applied (docs/plans.md). A skipped plan has
#: only its ``skip`` step, made where the filter rejects the email.
BUILDERS: tuple[tuple[type[AnyStep], Builder], ...] = (
    (UpsertEmailActivity, _activity),
    (CreateContact, _contact),
    (LinkParty, _parties),
    (SetRegarding, _regarding),
    (MarkDeliveryFailed, _bounces),
    (CreateOrUpdateCase, _case),
    (CreateQueueItem, _queue_item),
)


def mailbox_owner(email: Email, reference: ReferenceData) -> RecordRef | None:
    """The copy's owner: its own attribution first, then the mailbox configuration."""
    owner = owner_of(email)
    if owner is None and email.delivery.mailbox_id in reference.mailboxes:
        owner = reference.mailboxes[email.delivery.mailbox_id].owner
    return owner


def _queue_rule(
    email: Email, receiver: filters.Receiver, sender: parties.Resolution | None,
    config: RouteConfig, decisions: list[Decision],
) -> cases.Fired | None:
    # Queue rules apply to incoming mail received by a queue's own mailbox.
    if receiver.owner is None or receiver.owner.kind != "queue" or email.direction != "incoming":
        return None
    fired, misses = cases.first_match(receiver.owner.id, email, sender, config)
    detail = "; ".join(misses)
    if fired is None:
        decisions.append(Decision("queue_rule", "none",
                                  detail or f"queue:{receiver.owner.id} has no rule items"))
    else:
        decisions.append(Decision("queue_rule", "fired",
                                  f"{fired.label}" + (f" (after: {detail})" if detail else "")))
    return fired

