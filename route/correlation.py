"""The correlation chain: which stored thread might this email belong to?

Route cannot know whether a parent is tracked (that depends on other emails), so it lists the
*candidates* in the chain's order — In-Reply-To, tracking tokens, References (newest first),
the Outlook Thread-Index root, then smart matching — and persist takes the first that resolves
(docs/plans.md). Each method can be switched per mailbox, queue or user.
"""

from __future__ import annotations

import base64
import binascii
import re
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
from route.mail import REPLY_PREFIX, participants, subject_hash
from route.reference import RecordRef
from route.tokens import TokenFormat

# Quoted text: "> " lines, the separators and attribution lines clients put above a quote.
_QUOTE = re.compile(
    r"^\s*>|^-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine"
    r"|mensaje original|messaggio originale|oorspronkelijk bericht|forwarded message"
    r"|weitergeleitete nachricht)|^(?:on|am|le|el|il|op)\s.+(?:wrote|schrieb|a écrit|escribió"
    r"|ha scritto|schreef)[^\n]*:\s*$|^from:.+\n(?:.*\n)?(?:sent|date|gesendet|envoyé|enviado):",
    re.IGNORECASE | re.MULTILINE,
)


def answers_something(email: Email) -> bool:
    """Would a human see this email as a reply or forward? A reply/forward prefix on the
    subject, or quoted text in the body — never a bare repeated subject (a new "Invoice" is not
    a reply to last month's)."""
    if REPLY_PREFIX.match(email.subject or ""):
        return True
    if email.text_body and _QUOTE.search(email.text_body):
        return True
    return bool(email.html_body and "<blockquote" in email.html_body.lower())


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
        elif not answers_something(email):
            notes.append("smart matching skipped: no reply or forward prefix and no quoted "
                         "text (a repeated subject alone is no thread)")
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
