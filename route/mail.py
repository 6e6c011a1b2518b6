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

# A reply or forward prefix as mail clients write it, in the languages they ship in: English
# Re/Fw/Fwd, German AW/WG/Antw, Scandinavian SV/VS/FS/VB, Dutch Antw/Doorst, French Réf/TR/
# RE, Spanish and Portuguese RV/ENC/RES, Italian R/I/Rif, Polish Odp/PD, Turkish YNT/İLT,
# Hungarian Vá/Továbbítás, Czech Odp/Fwd, Finnish VS/VL, Chinese and Japanese forms. The one
# list both questions use: is this a reply (smart matching, route.correlation) and what is the
# subject without them (the subject hash) — a prefix the first knows and the second kept would
# make a reply's hash miss its original's.
REPLY_PREFIXES: tuple[str, ...] = (
    "re", "fw", "fwd", "aw", "wg", "antw", "antwort", "sv", "vs", "fs", "vb", "vl", "doorst",
    "réf", "ref", "tr", "rv", "enc", "res", "r", "i", "rif", "odp", "pd", "ynt", "i̇lt", "ilt",
    "vá", "válasz", "továbbítás", "回复", "答复", "转发", "回覆", "轉寄", "返信", "転送",
)
# One prefix: the word, Outlook's count ("RE[2]:", "AW(3):"), an optional dot (French "Réf."),
# then a colon, the full-width one included.
_ONE_PREFIX = (
    "(?:" + "|".join(re.escape(p) for p in sorted(REPLY_PREFIXES, key=len, reverse=True)) + ")"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*\.?\s*[:：]"
)
#: A subject that starts with a reply or forward prefix.
REPLY_PREFIX = re.compile(r"^\s*" + _ONE_PREFIX, re.IGNORECASE)
_PREFIXES = re.compile(r"^\s*(?:" + _ONE_PREFIX + r"\s*)+", re.IGNORECASE)


def owner_of(email: Email) -> RecordRef | None:
    """Who owns this copy: the forwarding user or queue for a forwarded copy, else the
    mailbox owner. A queue's forward is the queue's mail: its rules make queue items and
    cases, as for mail polled from the queue's own mailbox."""
    d = email.delivery
    if d.forwarded_by_user:
        return RecordRef("user", d.forwarded_by_user)
    if d.forwarded_by_queue:
        return RecordRef("queue", d.forwarded_by_queue)
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
