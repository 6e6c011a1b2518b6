"""The unwrap stage's limits, and what happens past each.

* total size (``unwrap_max_message_bytes``): dead letter ``too_large``, unparsed;
* attachment size (``unwrap_max_attachment_bytes``): the attachment is kept as name, type, size
  and sha256 without its bytes, and the email's warnings say so; with ``unwrap_over_limit =
  reject`` the message is dead-lettered ``attachment_too_large`` instead;
* part count (``unwrap_max_parts``): parts past the limit are not looked at and the email says
  so; with ``reject``: dead letter ``too_many_parts``;
* nesting depth (``unwrap_max_depth``): forwards of forwards deeper than this are kept as
  attachments of the deepest original followed, and the email says so;
* body length (``unwrap_max_body_chars``): text and HTML bodies are cut, and the email says so;
* header length (``unwrap_max_header_chars``): an address header or the Subject longer than this
  is cut (an address list at the last comma before the limit) and the email says so; a
  forward's From that long is no plain address (``forwarder_unparseable``); with ``reject``:
  dead letter ``header_too_long``. Parsing a 22 MB To header whole took 22 s and 1.4 GB;
* recipients (``unwrap_max_recipients``): addresses past this many in one header are not kept,
  and the email says so; with ``reject``: dead letter ``too_many_recipients``.

The time budget per message is the stage runner's (it owns the clock and the attempt counter).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.errors import ConfigError
from mailroom.settings import Settings


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 64 * 1024 * 1024
    max_attachment_bytes: int = 5 * 1024 * 1024
    blob_threshold_bytes: int = 256 * 1024
    max_depth: int = 3
    max_parts: int = 500
    max_body_chars: int = 1_000_000
    max_header_chars: int = 65_536
    max_recipients: int = 1_000
    over_limit: str = "omit"  # or "reject" (checked with the setting unwrap_over_limit)

    def __post_init__(self) -> None:
        if min(self.max_message_bytes, self.max_attachment_bytes, self.max_parts,
               self.max_header_chars, self.max_recipients) <= 0:
            raise ConfigError("unwrap size, part, header and recipient limits must be positive")
        if self.max_depth < 1:
            raise ConfigError("unwrap_max_depth must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_message_bytes=settings.unwrap_max_message_bytes,
            max_attachment_bytes=settings.unwrap_max_attachment_bytes,
            blob_threshold_bytes=settings.unwrap_blob_threshold_bytes,
            max_depth=settings.unwrap_max_depth,
            max_parts=settings.unwrap_max_parts,
            max_body_chars=settings.unwrap_max_body_chars,
            max_header_chars=settings.unwrap_max_header_chars,
            max_recipients=settings.unwrap_max_recipients,
            over_limit=settings.unwrap_over_limit,
        )

    @property
    def rejects(self) -> bool:
        return self.over_limit == "reject"
