"""The unwrap stage's limits, and what happens past each.

* total size (``unwrap_max_message_bytes``): dead letter ``too_large``, unparsed;
* attachment size (``unwrap_max_attachment_bytes``): the attachment is kept as name, type, size
  and sha256 without its bytes, and the email's warnings say so; with ``unwrap_over_limit =
  reject`` the message is dead-lettered ``attachment_too_large`` instead;
* part count (``unwrap_max_parts``): parts past the limit are not looked at and the email says
  so; with ``reject``: dead letter ``too_many_parts``;
* nesting depth (``unwrap_max_depth``): forwards of forwards deeper than this are kept as
  attachments of the deepest original followed, and the email says so;
* body length (``unwrap_max_body_chars``): text and HTML bodies are cut, and the email says so.

The time budget per message is the stage runner's (it owns the clock and the attempt counter).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.errors import ConfigError
from mailroom.settings import Settings

OVER_LIMIT_CHOICES = ("omit", "reject")


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 64 * 1024 * 1024
    max_attachment_bytes: int = 5 * 1024 * 1024
    blob_threshold_bytes: int = 256 * 1024
    max_depth: int = 3
    max_parts: int = 500
    max_body_chars: int = 1_000_000
    over_limit: str = "omit"

    def __post_init__(self) -> None:
        if self.over_limit not in OVER_LIMIT_CHOICES:
            raise ConfigError(f"unwrap_over_limit must be one of {OVER_LIMIT_CHOICES}, "
                              f"got {self.over_limit!r}")
        if min(self.max_message_bytes, self.max_attachment_bytes, self.max_parts) <= 0:
            raise ConfigError("unwrap size and part limits must be positive")
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
            over_limit=settings.unwrap_over_limit,
        )

    @property
    def rejects(self) -> bool:
        return self.over_limit == "reject"
