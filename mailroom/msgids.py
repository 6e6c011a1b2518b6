"""Message-IDs as the pipeline compares them: the addr-spec between the angle brackets,
whitespace removed, domain lower-cased (the local part is case-sensitive, RFC 5322).

One definition for every stage: unwrap writes it into each Email (persist stores it), and a
backfill compares what the server holds against what persist stored."""

from __future__ import annotations

import re

_MSGID = re.compile(r"<([^<>]*)>")


def normalise_message_id(value: str) -> str | None:
    """The addr-spec between the angle brackets, whitespace removed, domain lower-cased."""
    match = _MSGID.search(value)
    inner = match.group(1) if match else value
    inner = "".join(inner.split())
    if not inner:
        return None
    local, at, domain = inner.rpartition("@")
    return f"{local}@{domain.lower()}" if at else inner


def message_ids(value: str) -> list[str]:
    """Every bracketed Message-ID of a References or In-Reply-To value, normalised."""
    found = [normalise_message_id(m) for m in _MSGID.findall(value)]
    return [m for m in found if m]
