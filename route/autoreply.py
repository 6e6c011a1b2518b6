"""Loop, auto-reply and bounce protection: one question per rule, asked in table order.

Each rule answers "is this email automated?" for one reason. An automated email is still
tracked when a filter accepts it, but never opens a new case or creates a contact — that is
what breaks mail loops between two auto-responders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mailroom.records.email import Email
from route.mail import norm
from route.reference import ReferenceData

MAILER_DAEMONS = frozenset({"mailer-daemon", "mailer_daemon", "mailerdaemon", "postmaster",
                            "mail-daemon", "maildaemon"})


@dataclass(frozen=True)
class Finding:
    rule: str
    detail: str


def auto_submitted(email: Email, reference: ReferenceData) -> Finding | None:
    value = (email.markers.auto_submitted or "").split(";")[0].strip().lower()
    if value and value != "no":
        return Finding("autoreply.auto_submitted", f"Auto-Submitted: {value}")
    return None


def precedence(email: Email, reference: ReferenceData) -> Finding | None:
    value = (email.markers.precedence or "").strip().lower()
    if value in ("bulk", "junk", "list"):
        return Finding("autoreply.precedence", f"Precedence: {value}")
    return None


def auto_response_suppress(email: Email, reference: ReferenceData) -> Finding | None:
    value = (email.markers.x_auto_response_suppress or "").strip()
    if value:
        return Finding("autoreply.x_auto_response_suppress", f"X-Auto-Response-Suppress: {value}")
    return None


def x_autoreply(email: Email, reference: ReferenceData) -> Finding | None:
    value = (email.markers.x_autoreply or "").strip()
    if value and value.lower() != "no":
        return Finding("autoreply.x_autoreply", f"X-Autoreply: {value}")
    return None


def mailer_daemon(email: Email, reference: ReferenceData) -> Finding | None:
    local = norm(email.from_address).partition("@")[0]
    if local in MAILER_DAEMONS or (email.from_address is None and email.report.kind != "none"):
        return Finding("autoreply.mailer_daemon", f"sent by {norm(email.from_address) or '<>'}")
    return None


def null_sender(email: Email, reference: ReferenceData) -> Finding | None:
    # Return-Path <> is what bounces and auto-replies are sent with (RFC 5321 4.5.5, RFC 3834):
    # even a notice unwrap could not classify never opens a case or creates a contact.
    if "".join((email.markers.return_path or "").split()) == "<>":
        return Finding("autoreply.null_sender", "Return-Path: <> (the null sender)")
    return None


def auto_reply(email: Email, reference: ReferenceData) -> Finding | None:
    if email.report.kind == "auto_reply":
        return Finding("autoreply.auto_reply", f"an auto-reply ({email.report.detail or ''})")
    return None


def report(email: Email, reference: ReferenceData) -> Finding | None:
    if email.report.kind != "none":
        return Finding("autoreply.report", f"a {email.report.kind.replace('_', ' ')}")
    return None


def own_queue(email: Email, reference: ReferenceData) -> Finding | None:
    # Mail sent by one of our own queues (an acknowledgement, say) landing in a monitored
    # mailbox would otherwise bounce between queues for ever.
    sender = norm(email.from_address)
    if email.direction == "incoming" and any(
        m.record.kind == "queue" for m in reference.matches(sender)
    ):
        return Finding("autoreply.loop", f"sent by our own queue address {sender}")
    return None


RULES: tuple[Callable[[Email, ReferenceData], Finding | None], ...] = (
    auto_submitted, precedence, auto_response_suppress, x_autoreply, auto_reply, mailer_daemon,
    null_sender, report, own_queue,
)


def automated(email: Email, reference: ReferenceData) -> Finding | None:
    """The first rule that finds the email automated, or None for mail a person wrote."""
    for rule in RULES:
        finding = rule(email, reference)
        if finding is not None:
            return finding
    return None


def bounced_original(email: Email) -> str | None:
    """The Message-ID of the email a failed-delivery bounce reports on, when known.

    The Message-ID in the report's returned headers names the original itself; the bounce's
    own In-Reply-To / last Reference is only the fallback (set by many MTAs, not all, and by
    some to a different message of the thread).
    """
    if email.report.kind != "bounce":
        return None
    return (email.report.original_message_id or email.in_reply_to
            or (email.references[-1] if email.references else None))
