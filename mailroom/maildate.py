"""Dates as mail headers write them (RFC 5322 ``date-time``), read the one way every stage needs.

Used for a message's ``Date`` and for the stamp at the end of a ``Received`` header (its
arrival): ingest reads it from the headers POP3's ``TOP`` returns, unwrap from a parsed message.
One reader, so the same header gives the same instant wherever it is read.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime


def parse_date(value: str) -> datetime | None:
    """The date as an aware UTC datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        parts = email.utils.parsedate_tz(value)
        if parts is None:
            return None
        offset = parts[9] or 0  # no zone given: read as UTC, never as this machine's zone
        naive = datetime(*parts[:6])  # type: ignore[misc]
        return datetime.fromtimestamp(naive.replace(tzinfo=UTC).timestamp() - offset, UTC)
    except (ValueError, OverflowError, OSError, TypeError, IndexError):
        # a year or an offset out of range: unreadable, not a crash
        return None
