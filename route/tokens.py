"""Tracking tokens: ``CRM:0001234`` in an outgoing subject, found again in the reply.

A token is a prefix, a separator and a zero-padded number from the token registry
(``route_tokens``; ``mailroom token new`` issues one). Only the number identifies the token, so
when an admin changes the prefix, tokens issued under a *former* prefix still correlate: the
parser accepts the current prefix and every former one and returns the bare number.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailroom.errors import ConfigError

_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,15}$")


@dataclass(frozen=True)
class TokenFormat:
    prefix: str = "CRM"
    separator: str = ":"
    digits: int = 7  # zero-padded width; longer numbers are written in full
    former_prefixes: tuple[str, ...] = ()

    def format(self, number: int) -> str:
        return f"{self.prefix}{self.separator}{number:0{self.digits}d}"

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """Built once per format (route asks for it twice an email: find and strip)."""
        prefixes = sorted({self.prefix, *self.former_prefixes}, key=len, reverse=True)
        alternatives = "|".join(re.escape(p) for p in prefixes)
        # At least 4 digits: "CRM:12" in prose is not one of ours. The boundary before the
        # prefix keeps "XCRM:0001234" from matching; the one after keeps a longer number whole.
        return re.compile(
            rf"(?<![A-Za-z0-9])(?:{alternatives}){re.escape(self.separator)}(\d{{4,}})(?!\d)",
            re.IGNORECASE,
        )

    def find(self, subject: str) -> list[str]:
        """The token numbers in a subject, normalised (no leading zeros), first seen first."""
        seen: list[str] = []
        for match in self.pattern.finditer(subject or ""):
            number = str(int(match.group(1)))
            if number not in seen:
                seen.append(number)
        return seen

    def strip(self, subject: str) -> str:
        """The subject without its tokens (for the smart-match subject hash)."""
        return self.pattern.sub(" ", subject or "")

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], where: str) -> TokenFormat:
        allowed = {"prefix", "separator", "digits", "former_prefixes"}
        unknown = sorted(set(doc) - allowed)
        if unknown:
            raise ConfigError(f"{where}{unknown[0]}: unknown key (allowed: {sorted(allowed)})")
        prefix = doc.get("prefix", cls.prefix)
        former = doc.get("former_prefixes", [])
        if not isinstance(former, list):
            raise ConfigError(f"{where}former_prefixes: expected an array of strings")
        for key, value in [("prefix", prefix)] + [("former_prefixes", p) for p in former]:
            if not isinstance(value, str) or not _PREFIX.match(value):
                raise ConfigError(
                    f"{where}{key}: {value!r} is not a prefix (a letter, then up to 15 "
                    "letters or digits)"
                )
        separator = doc.get("separator", cls.separator)
        if separator not in (":", "#", "-", "/"):
            raise ConfigError(f"{where}separator: one of ':', '#', '-', '/' — got {separator!r}")
        digits = doc.get("digits", cls.digits)
        if not isinstance(digits, int) or isinstance(digits, bool) or not 4 <= digits <= 12:
            raise ConfigError(f"{where}digits: a number from 4 to 12, got {digits!r}")
        return cls(prefix, separator, digits, tuple(p for p in former if p != prefix))
