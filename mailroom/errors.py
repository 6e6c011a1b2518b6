"""One error hierarchy for the whole product.

Every error Mailroom raises on purpose descends from :class:`MailroomError`. The split that
matters to a stage is explicit in the type: a :class:`TransientError` is retried with backoff
(the message stays where it is), a :class:`PermanentError` sends the message to the dead-letter
topic with its reason, and :class:`UnknownSchemaError` pauses the stage (the writer is newer
than the reader — the message is not poison).
"""

from __future__ import annotations


class MailroomError(Exception):
    """Root of every error Mailroom raises on purpose."""


class ConfigError(MailroomError):
    """The configuration is invalid or incomplete; the message says which setting and why."""


class TransientError(MailroomError):
    """Worth retrying later: network down, server busy, timeout, lock held."""


class PermanentError(MailroomError):
    """Retrying will not help: the input or the account is bad. Dead-letter or disable."""


class MalformedRecordError(PermanentError):
    """A topic value that is not a readable Avro single-object record: poison, dead-letter it.

    Distinct from :class:`UnknownSchemaError`: here the bytes themselves are broken (no marker,
    truncated, undecodable), so no newer process could read them either.
    """


class UnknownSchemaError(MailroomError):
    """A record's schema fingerprint is not in ``schemas/``: the stage is older than the writer.

    Stages stop consuming (pause) on this error instead of dead-lettering: upgrade the stage.
    """

    def __init__(self, fingerprint: bytes, where: str = "") -> None:
        self.fingerprint = fingerprint
        detail = f" ({where})" if where else ""
        super().__init__(
            f"unknown schema fingerprint {fingerprint.hex()}{detail}: this process is older than "
            "the writer of the record; upgrade it (the record is not poison and stays in place)"
        )


class Fenced(MailroomError):  # noqa: N818 - the name says what happened
    """Another process owns this work now (it claimed the mailbox or the partitions with a newer
    generation): the write must not happen. Not a failure of the work itself: no retry, no death
    counted; its owner does it."""


class FaultInjected(MailroomError):  # noqa: N818 - the name says what it is
    """Raised only when a named fault point is armed in ``raise`` mode (tests)."""
