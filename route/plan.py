"""``plan(email, reference, config) -> Plan``: the route stage's whole decision, pure.

Questions are asked in a fixed order — track filter, correlation, parties, automated mail,
queue rules — each answer recorded as a :class:`Decision`; a short table of step builders then
turns the answers into declarative steps (docs/plans.md). Nothing here touches a broker or a
database, and the same inputs always give the same plan, so replays re-derive it exactly.
"""

from __future__ import annotations

from mailroom.records.action import Condition, Decision, Plan, Step
from mailroom.records.email import Email
from route import autoreply, cases, correlation, filters, parties
from route.config import RouteConfig
from route.mail import iso, norm, owner_of, participants, subject_hash
from route.reference import RecordRef, ReferenceData

_DAY = 86_400


def _key(*parts: str) -> str:
    return "|".join(parts)


def plan(
    email: Email, reference: ReferenceData, config: RouteConfig, encoded: bytes = b""
) -> Plan:
    """The plan for one copy of one email. ``encoded``: the Email as read from the topic."""
    decisions: list[Decision] = []
    key = email.dedupe_key
    receiver = filters.Receiver(email.delivery.mailbox_id, mailbox_owner(email, reference))
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
        skip = Step("skip", key, params={"reason": verdict.reason, "rule": "filter"})
        return Plan(**base, steps=[skip], decisions=decisions)
    owner = verdict.receiver.owner if verdict.receiver else None
    accepting = str(owner) if owner else ""

    found = autoreply.automated(email, reference)
    decisions.append(Decision(
        found.rule if found else "autoreply", "automated" if found else "person",
        found.detail if found else "no auto-reply, bounce or loop marker",
    ))

    fired = _queue_rule(email, receiver, sender, config, decisions)
    steps: list[Step] = []

    # 1. the email activity itself; conditional when only "replies" accepted it
    activity = {
        "receiving_mailbox": receiver.mailbox_id,
        "accepting_owner": accepting,
        "direction": email.direction,
        "copy_kind": email.delivery.copy_kind,
        "sent_at": iso(email.date),
        "sender": norm(email.from_address),
        "thread_root": correlation.thread_root(email.thread_index)[0],
        "subject_hash": subject_hash(email.subject, config.token),
        "participants": ",".join(participants(email)),
        "customer": str(customer) if customer else "",
        "automated": found.detail if found else "",
        "case_rule": fired.label if fired and fired.item.create_case and not found else "",
    }
    track_condition = None
    if verdict.verdict is filters.Verdict.CONDITIONAL:
        track_condition = Condition(
            "correlates", otherwise=f"not a reply to tracked mail ({verdict.reason})"
        )
    steps.append(Step("upsert_email_activity", key, track_condition, activity))

    # 2. contacts for unknown senders, when the owner's policy says so
    contact_key = ""
    wants = config.create_contacts.get(accepting, False)
    if (sender is not None and sender.outcome == "unknown" and wants
            and email.direction == "incoming" and found is None):
        contact_key = _key("contact", sender.address)
        steps.append(Step(
            "create_contact", contact_key,
            Condition("address_unknown", {"address": sender.address},
                      otherwise=f"{sender.address} has a record by now"),
            {"address": sender.address, "name": sender.name,
             "owner": owner.id if owner and owner.kind == "user" else ""},
        ))
        decisions.append(Decision("parties.create_contact", "planned",
                                  f"{accepting} creates contacts for unknown senders"))

    # 3. parties
    for res in resolutions:
        records = res.records or (None,)
        for record in records:
            params = {"role": res.role, "address": res.address, "name": res.name,
                      "record": str(record) if record else "", "outcome": res.outcome,
                      "detail": res.detail}
            if res.role == "from" and contact_key:
                params["contact_step"] = contact_key
            steps.append(Step("link_party", _key(key, res.role, res.address), None, params))
        decisions.append(Decision(f"parties.{res.role}", res.outcome,
                                  f"{res.address}: {res.detail}"))

    # 4. regarding, inherited from whichever candidate resolves
    if candidates:
        steps.append(Step("set_regarding", key, Condition(
            "correlates", otherwise="no candidate thread is tracked"), {}))

    # 5. failed-delivery bounces mark the original's delivery failed
    original = autoreply.bounced_original(email)
    if email.report.kind == "bounce":
        if original:
            for rcpt in email.report.failed_recipients or ("",):
                steps.append(Step(
                    "mark_delivery_failed", _key(original, rcpt.lower()),
                    Condition("original_tracked", {"message_id": original},
                              otherwise=f"the original {original} is not tracked"),
                    {"message_id": original, "recipient": rcpt.lower(),
                     "detail": email.report.detail or ""},
                ))
        decisions.append(Decision("bounce", "linked" if original else "unlinkable",
                                  original or "the bounce names no original Message-ID"))

    # 6. case and queue item
    if fired is not None:
        if fired.item.create_case and found is None:
            cs = config.cases
            steps.append(Step(
                "create_or_update_case", _key("case", key),
                Condition("case_rules", {
                    "sender": norm(email.from_address),
                    "sent_at": iso(email.date),
                    "reopen_window_seconds": str(cs.reopen_window_days * _DAY),
                    "rate_limit_cases": str(cs.rate_limit_cases),
                    "rate_limit_window_seconds": str(cs.rate_limit_window_hours * 3600),
                }, otherwise="no case: see the evaluation's reason"),
                {"queue": fired.queue_id, "rule_item": fired.label,
                 "title": email.subject or "(no subject)",
                 "customer": str(customer) if customer else "", "origin": key},
            ))
        elif fired.item.create_case:
            decisions.append(Decision("case", "not created",
                                      f"automated mail never opens a case ({found.detail})"
                                      if found else ""))
        if fired.item.create_queue_item:
            steps.append(Step(
                "create_queue_item", _key("queue_item", fired.queue_id, key), None,
                {"queue": fired.queue_id, "rule_item": fired.label},
            ))
    return Plan(**base, accepting_owner=accepting, steps=steps, decisions=decisions)


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

