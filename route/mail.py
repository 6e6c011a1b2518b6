"""What route reads off an Email, computed once and named: owner, addresses, subject hash.

These derived values also travel in the plan (``upsert_email_activity`` params), so persist
stores exactly what route matched on and later emails correlate against the same definitions.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from mailroom.records.email import Address, Email
from route.reference import RecordRef
from route.tokens import TokenFormat

# Reply and forward prefixes of the mail clients users actually have, in several languages.
_PREFIXES = re.compile(
    r"^\s*((re|fw|fwd|aw|wg|sv|vs|tr|antw|rv|enc|r)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE
)


def owner_of(email: Email) -> RecordRef | None:
    """Who owns this copy: the forwarding user for a forwarded copy, else the mailbox owner."""
    d = email.delivery
    if d.forwarded_by_user:
        return RecordRef("user", d.forwarded_by_user)
    if d.owner_kind in ("user", "queue") and d.owner_id:
        return RecordRef(d.owner_kind, d.owner_id)
    return None


def norm(address: Address | None) -> str:
    return "" if address is None else address.address.strip().lower()


def recipients(email: Email) -> list[str]:
    return [norm(a) for a in (*email.to, *email.cc) if norm(a)]


def participants(email: Email) -> list[str]:
    """Every address on the email except Bcc, sorted, without duplicates."""
    found = {norm(email.from_address), *recipients(email)}
    found.discard("")
    return sorted(found)


def base_subject(subject: str, tokens: TokenFormat) -> str:
    """The subject without reply/forward prefixes, tokens, case and extra whitespace."""
    text = tokens.strip(subject or "")
    previous = None
    while previous != text:  # "Re: Fwd: RE:" in any mix
        previous, text = text, _PREFIXES.sub("", text)
    return " ".join(text.split()).lower()


def subject_hash(subject: str, tokens: TokenFormat) -> str:
    base = base_subject(subject, tokens)
    return hashlib.sha256(base.encode()).hexdigest() if base else ""


def iso(when: datetime | None) -> str:
    """UTC, millisecond precision, fixed width: compares as text and as time alike."""
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
