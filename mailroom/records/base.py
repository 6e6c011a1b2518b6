"""What every topic record shares: the codec contract and millisecond UTC timestamps.

Avro's ``timestamp-millis`` keeps milliseconds and no time zone, so records normalise their
times on construction: an aware datetime, converted to UTC, truncated to the millisecond. Then a
record equals itself after a round trip through Kafka, and a naive datetime (whose meaning
depends on the machine's zone) is refused instead of silently shifted.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, Self, TypeVar


class AvroRecord(Protocol):
    """A typed record that travels on a topic. ``SCHEMA`` is its name in ``schemas/``; the
    record classes get ``to_avro``/``from_avro`` from :class:`mailroom.records.avro.AvroMapped`."""

    SCHEMA: ClassVar[str]

    def to_avro(self) -> dict[str, Any]: ...

    @classmethod
    def from_avro(cls, datum: dict[str, Any]) -> Self: ...


R = TypeVar("R", bound=AvroRecord)


def utc_millis(value: datetime) -> datetime:
    """``value`` in UTC, truncated to the millisecond; a naive datetime is a programming error."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: give a time zone (Avro times are UTC)")
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def optional_utc_millis(value: datetime | None) -> datetime | None:
    return None if value is None else utc_millis(value)


def now_millis() -> datetime:
    return utc_millis(datetime.now(UTC))


def check_choice(field: str, value: str, allowed: Collection[str]) -> None:
    # The schemas keep these as strings (an Avro enum cannot gain a symbol and stay readable by
    # older readers), so the allowed values are checked here, where records are made.
    if value not in allowed:
        raise ValueError(f"{field} must be one of {sorted(allowed)}, got {value!r}")


def set_field(obj: object, name: str, value: Any) -> None:
    """Assign in ``__post_init__`` of a frozen dataclass (normalisation only)."""
    object.__setattr__(obj, name, value)
