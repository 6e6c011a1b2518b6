"""Applying one plan inside the caller's transaction: evaluate each step's condition against
the stored state (docs/plans.md), apply the outcome, and say what happened (for the trace).

Pure-ish: no broker, no clock, no commit — the caller (``persist.batch``) owns the transaction,
the thread locks and the savepoint around each plan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from mailroom.codec import Codec
from mailroom.db import statements
from mailroom.records.action import Plan
from mailroom.records.email import Email
from mailroom.records.steps import (
    AnyStep,
    CreateContact,
    CreateOrUpdateCase,
    CreateQueueItem,
    LinkParty,
    MarkDeliveryFailed,
    SetRegarding,
    Skip,
    UpsertEmailActivity,
)
from persist import activities, cases, correlate, guard, park
from persist.activities import Stored
from persist.batchrows import BatchRows


@dataclass
class Applied:
    event: str  # persisted | parked | skipped
    detail: dict[str, str] = field(default_factory=dict)
    landed: list[str] = field(default_factory=list)  # watch keys it satisfied (correlate)
    # Message-IDs the plan now watches (parked on them, or waiting to inherit from them)
    waiting: list[str] = field(default_factory=list)


def contact_id(address: str) -> str:
    """The id of the contact persist creates for an address: derived from the step's natural
    key, so a replay (or another copy) names the same contact."""
    return "mr-" + hashlib.sha256(address.encode()).hexdigest()[:16]


def _record_of(conn: psycopg.Connection, address: str) -> str:
    row = statements.run(
        conn,
        "SELECT record_kind || ':' || record_id FROM email_addresses WHERE address = %s "
        "ORDER BY record_kind = 'contact' DESC, record_kind, record_id LIMIT 1", (address,),
    ).fetchone()
    return str(row[0]) if row else ""


def _create_contact(conn: psycopg.Connection, step: CreateContact) -> tuple[str, str]:
    """(record the address now names, what happened) for a ``create_contact`` step."""
    address = step.address.strip().lower()
    known = _record_of(conn, address)
    if known:  # condition address_unknown is false
        return known, f"not created: {address} is {known}"
    remembered = conn.execute(
        "SELECT contact_id FROM persist_created_contacts WHERE address = %s", (address,),
    ).fetchone()
    if remembered is not None:
        # Created once, then deleted by a user (its address row is gone): not brought back.
        return "", f"not created: contact {remembered[0]} for {address} was deleted"
    cid = contact_id(address)
    name = step.name.strip()
    first, _, last = name.rpartition(" ")
    if not last:
        last = address.split("@")[0] or address
    conn.execute(
        "INSERT INTO contacts (id, first_name, last_name, owner_id) VALUES "
        "(%s, %s, %s, (SELECT id FROM users WHERE id = %s)) ON CONFLICT DO NOTHING",
        (cid, first, last, step.owner),
    )
    conn.execute(
        "INSERT INTO email_addresses (record_kind, record_id, address, is_primary) "
        "VALUES ('contact', %s, %s, true) ON CONFLICT DO NOTHING", (cid, address),
    )
    conn.execute(
        "INSERT INTO persist_created_contacts (address, contact_id) VALUES (%s, %s) "
        "ON CONFLICT DO NOTHING", (address, cid),
    )
    return f"contact:{cid}", f"created contact:{cid}"


@dataclass
class Applying:
    """One plan being applied: what the step handlers read and what they add to."""

    conn: psycopg.Connection
    plan: Plan
    stored: Stored
    corr: correlate.Correlation
    detail: dict[str, str]
    waiting: set[str]
    contacts: dict[str, str] = field(default_factory=dict)  # create_contact key -> record
    parties: list[tuple[object, ...]] = field(default_factory=list)


def _contact(at: Applying, step: CreateContact) -> None:
    at.contacts[step.key], at.detail[f"contact {step.key}"] = _create_contact(at.conn, step)


def _party(at: Applying, step: LinkParty) -> None:
    record, outcome, why = step.record, step.outcome, step.detail
    linked = at.contacts.get(step.contact_step, "")
    if not record and linked:
        record, outcome, why = linked, "resolved", f"contact from step {step.contact_step}"
    at.parties.append((at.stored.id, step.role, step.address, record, step.name, outcome, why))


def _regarding(at: Applying, step: SetRegarding) -> None:
    if at.corr.found and at.corr.regarding:
        activities.set_regarding(at.conn, at.stored.id, at.corr.regarding)
    at.detail["regarding"] = at.corr.regarding or step.condition.otherwise


def _delivery_failed(at: Applying, step: MarkDeliveryFailed) -> None:
    hit = correlate.activity_by_message_id(at.conn, step.message_id)
    if hit is None:  # condition original_tracked is false (yet): wait for the original
        at.waiting.add(step.message_id)
        at.detail[f"bounce {step.key}"] = "waiting: " + (
            step.condition.otherwise or step.message_id)
        return
    at.conn.execute(
        "INSERT INTO activity_delivery_failures (activity_id, recipient, "
        "bounce_activity_id, detail) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (hit[0], step.recipient, at.stored.id, step.detail),
    )
    at.detail[f"bounce {step.key}"] = f"delivery failed on activity {hit[0]}"


def _case(at: Applying, step: CreateOrUpdateCase) -> None:
    out = cases.apply(at.conn, step, at.corr, at.stored.id, at.plan.dedupe_key,
                      provisional=bool(at.corr.waiting))
    at.detail["case"] = f"{out.what} {out.case_id or ''} {out.reason}".strip()


def _queue_item(at: Applying, step: CreateQueueItem) -> None:
    statements.run(
        at.conn,
        "INSERT INTO queue_items (queue_id, activity_id, rule_item) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING", (step.queue, at.stored.id, step.rule_item),
    )


def _applied_first(at: Applying, step: Skip | UpsertEmailActivity) -> None:
    """Skip and the activity decide the whole plan: :func:`apply_plan` applies them first."""


#: A handler for every step kind, by its class; each applies its step inside the transaction.
HANDLERS: dict[type[AnyStep], Callable[[Applying, Any], None]] = {
    Skip: _applied_first,
    UpsertEmailActivity: _applied_first,
    CreateContact: _contact,
    LinkParty: _party,
    SetRegarding: _regarding,
    MarkDeliveryFailed: _delivery_failed,
    CreateOrUpdateCase: _case,
    CreateQueueItem: _queue_item,
}


def apply_plan(
    conn: psycopg.Connection, codec: Codec, plan: Plan, encoded: bytes, received_ms: int,
    known: BatchRows | None = None,
) -> Applied:
    """``known``: the batch's rows read ahead and written behind (an all-or-nothing pass
    only; :mod:`persist.batchrows`)."""
    skips = plan.steps_of(Skip)
    if skips:
        return Applied("skipped", {"reason": skips[0].reason, "rule": skips[0].rule})
    upserts = plan.steps_of(UpsertEmailActivity)
    if not upserts:
        return Applied("skipped", {"reason": "the plan has no activity step"})
    upsert = upserts[0]
    sender = guard.sender_of(upsert.customer, upsert.sender, upsert.direction,
                             report=bool(plan.steps_of(MarkDeliveryFailed)))
    corr = correlate.resolve(conn, plan, upsert.sent_at, sender)
    detail = {"correlation": corr.describe()}
    if upsert.condition is not None and not corr.found:
        if corr.waiting:
            park.remember(conn, plan, encoded, received_ms, corr.waiting, parked=True, known=known)
            return Applied("parked", {**detail, "waiting_on": ", ".join(sorted(corr.waiting))},
                           waiting=sorted(corr.waiting))
        park.forget(conn, plan, known)
        return Applied("skipped", {**detail, "reason": upsert.condition.otherwise})

    email = codec.decode_record(plan.email, Email)
    refused = "; ".join(corr.refused)
    stored = activities.upsert(
        conn, plan, email, upsert, received_ms, known, refused=refused,
        parent=(corr.parent_id, corr.method, corr.rank or 0) if corr.found else None)
    detail["activity"] = str(stored.id)
    if stored.collision:
        detail["collision"] = "same dedupe key, different content hash: kept apart"
    if stored.content_from_this_copy and not stored.new:
        detail["content"] = f"richer copy ({email.delivery.copy_kind}) supplies the content"
    if corr.found and not stored.new:
        activities.set_correlation(conn, stored.id, corr.parent_id, corr.method, corr.rank or 0)
    if corr.refused:
        detail["refused"] = refused
    if not stored.new:
        # Kept current on every evaluation of a stored email (its parent landed since).
        activities.set_refused(conn, stored.id, refused)
    claimed = (correlate.claim_tokens(conn, plan, upsert.sent_at)
               if email.direction == "outgoing" and not stored.collision else [])

    at = Applying(conn, plan, stored, corr, detail, set(corr.waiting))
    for step in plan.steps:
        HANDLERS[type(step)](at, step)
    activities.link_parties(conn, at.parties, known)
    waiting = at.waiting
    park.remember(conn, plan, encoded, received_ms, waiting, parked=False, known=known)
    if waiting:
        detail["waiting_on"] = ", ".join(sorted(waiting))
    # What waiting plans may be watching for: this email (Message-ID, conversation, subject)
    # when first stored, and the tokens it became the original of.
    landed = (correlate.landing_keys(plan, upsert) if stored.new and not stored.collision
              else []) + claimed
    return Applied("persisted", detail, landed, sorted(waiting))

