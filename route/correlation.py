"""The correlation chain: which stored thread might this email belong to?

Route cannot know whether a parent is tracked (that depends on other emails), so it lists the
*candidates* in the chain's order — In-Reply-To, tracking tokens, References (newest first),
the Outlook Thread-Index root, then smart matching — and persist takes the first that resolves
(docs/plans.md). Each method can be switched per mailbox, queue or user.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta

from mailroom.records.candidates import (
    AnyCandidate,
    InReplyTo,
    References,
    Smart,
    ThreadIndex,
    Token,
)
from mailroom.records.email import Email
from route.config import CorrelationSwitches
from route.mail import participants, subject_hash
from route.reference import RecordRef
from route.tokens import TokenFormat

# Outlook's Thread-Index: a 22-byte header (the conversation) then a 5-byte block per reply.
_THREAD_HEADER = 22


def thread_root(thread_index: str | None) -> tuple[str, bool]:
    """(base64 of the conversation's 22-byte header, whether this message is a reply in it)."""
    if not thread_index:
        return "", False
    try:
        raw = base64.b64decode("".join(thread_index.split()), validate=True)
    except (binascii.Error, ValueError):
        return "", False
    if len(raw) < _THREAD_HEADER or (len(raw) - _THREAD_HEADER) % 5:
        return "", False
    return base64.b64encode(raw[:_THREAD_HEADER]).decode(), len(raw) > _THREAD_HEADER


def candidates(
    email: Email,
    switches: CorrelationSwitches,
    tokens: TokenFormat,
    customer: RecordRef | None,
) -> tuple[list[AnyCandidate], list[str]]:
    """The ordered candidates, and notes for the decision trace on what was left out and why."""
    found: list[AnyCandidate] = []
    notes: list[str] = []
    own = email.message_id or ""

    def add(candidate: AnyCandidate) -> None:
        if candidate.value and candidate.value != own and not any(
            type(c) is type(candidate) and c.value == candidate.value for c in found
        ):
            found.append(candidate)

    if switches.in_reply_to and email.in_reply_to:
        add(InReplyTo(email.in_reply_to))
    if switches.token:
        for number in tokens.find(email.subject):
            add(Token(number))
    if switches.references:
        # The last reference is the direct parent; walk back towards the thread's start.
        for ref in reversed(email.references):
            if ref != email.in_reply_to or not switches.in_reply_to:
                add(References(ref))
    if switches.thread_index:
        root, is_reply = thread_root(email.thread_index)
        if is_reply:
            add(ThreadIndex(root))
    if switches.smart:
        shash = subject_hash(email.subject, tokens)
        if customer is None:
            notes.append("smart matching skipped: the sender's customer is not resolved "
                         "(it never joins threads across customers)")
        elif not shash or email.date is None:
            notes.append("smart matching skipped: no subject or no date")
        else:
            add(Smart(
                value=shash,
                participants=tuple(participants(email)),
                min_shared=switches.smart_min_participants,
                customer=str(customer),
                since=email.date - timedelta(days=switches.smart_lookback_days),
                before=email.date,
            ))
    return found, notes
