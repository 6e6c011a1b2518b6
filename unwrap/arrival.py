"""When an original arrived at the forwarding user's mailbox, read from its own headers.

A forward's "process email from" (the forwarder's mailbox setting) is judged by the original's
arrival, not by when the forward reached the forward mailbox: a forward sent today of a message
that arrived last year is last year's mail. The arrival is the date of the original's topmost
``Received`` header (the last server's stamp — the forwarding user's own, for a forward as an
attachment by a server rule, or our forward mailbox's hop for a redirect, which a rule sends on
as it arrives), else its ``Date``; neither readable: unknown, and the original is processed.
"""

from __future__ import annotations

from datetime import datetime
from email.message import Message

from mailroom.maildate import parse_date
from unwrap.parse import raw_header


def arrival(msg: Message) -> tuple[datetime | None, str]:
    """(arrival, how it was read: "Received header" | "Date header" | "")."""
    received = raw_header(msg, "received", 4_096)
    if received:
        when = parse_date(received.rpartition(";")[2])
        if when is not None:
            return when, "Received header"
    when = parse_date(raw_header(msg, "date", 1_000))
    return (when, "Date header") if when is not None else (None, "")

