"""Typed plan parts ↔ the plan schema's string maps: the one place a plan's wire form is read.

The plan schema (v1) keeps a step's, condition's and candidate's arguments in a ``params`` map
of strings, so a plan parked in PostgreSQL years ago, or written by an older route, still reads
(docs/plans.md, "Wire format"). In memory every part is a dataclass with typed fields; this
module turns one into the other, field by field from the type hints, with converters built once
per class:

========================  ==========================================================
field type                in ``params``
========================  ==========================================================
``str``                   as is
``int``                   decimal (an empty or missing value reads as the default)
``datetime | None``       ISO 8601 UTC with milliseconds, ``…Z``; ``""`` for None
``tuple[str, ...]``       comma-separated; as a JSON list when an item holds a comma
                          or is empty, or the first starts with ``[`` (old plans never
                          start with ``[``)
========================  ==========================================================

A key missing from an old plan reads as the field's default; a key this reader does not know is
ignored, so a plan from a newer route that added one still applies.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

ToText = Callable[[Any], str]
_ZERO = timedelta(0)
FromText = Callable[[str], Any]


def iso(when: datetime | None) -> str:
    """UTC, millisecond precision, fixed width: compares as text and as time alike."""
    if when is None:
        return ""
    if when.utcoffset() != _ZERO:
        when = when.astimezone(UTC)
    return when.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" → "Z"


def parse_iso(text: str) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _join(items: tuple[str, ...]) -> str:
    # A first item starting with "[" would read back as a JSON list: JSON it is, then.
    if any(not item or "," in item for item in items) or (items and items[0][:1] == "["):
        return json.dumps(list(items))
    return ",".join(items)


def _split(text: str) -> tuple[str, ...]:
    if text.startswith("["):
        return tuple(str(item) for item in json.loads(text))
    return tuple(item for item in text.split(",") if item)


def _converters(hint: Any, where: str) -> tuple[ToText, FromText]:
    if hint is str:
        return str, str
    if hint is int:
        return str, int
    if hint == (datetime | None):
        return iso, parse_iso
    if hint == tuple[str, ...]:
        return _join, _split
    raise TypeError(f"{where}: no params mapping for {hint!r}")


class ParamsMapping:
    """A dataclass's fields (all but ``skip``) as a ``params`` map and back, as two functions
    generated once per class (plans are decoded and encoded on every email)."""

    def __init__(self, cls: type, skip: frozenset[str]) -> None:
        hints = typing.get_type_hints(cls)
        names: dict[str, Any] = {"_C": cls, "_MISSING": _missing}
        to_items, from_args = [], []
        for i, f in enumerate(dataclasses.fields(cls)):
            if f.name in skip:
                continue
            to_text, from_text = _converters(hints[f.name], f"{cls.__name__}.{f.name}")
            names[f"_to{i}"], names[f"_from{i}"] = to_text, from_text
            has_default = (f.default is not dataclasses.MISSING
                           or f.default_factory is not dataclasses.MISSING)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if has_default else None)  # type: ignore[misc]
            names[f"_default{i}"] = default
            to_items.append(f"{f.name!r}: " + (f"o.{f.name}" if hints[f.name] is str
                                               else f"_to{i}(o.{f.name})"))
            if not has_default:
                read = f"_from{i}(p[{f.name!r}]) if {f.name!r} in p else _MISSING({f.name!r})"
            elif hints[f.name] is str:
                read = f"p.get({f.name!r}, _default{i})"
            else:  # "" is no value for an int, a time or a list: the default
                read = f"_from{i}(_v) if (_v := p.get({f.name!r})) else _default{i}"
            from_args.append(f"{f.name}=({read})")
        source = (
            "def to_params(o):\n    return {" + ", ".join(to_items) + "}\n\n"
            "def make(p, **given):\n    return _C(" + "".join(a + ", " for a in from_args)
            + "**given)\n"
        )
        exec(compile(source, f"<params mapping of {cls.__qualname__}>", "exec"), names)
        self.cls = cls
        self.to_params: Callable[[Any], dict[str, str]] = names["to_params"]
        #: The instance from ``params`` and the skipped fields, given as keywords.
        self.make: Callable[..., Any] = names["make"]
        self.source = source


def _missing(name: str) -> Any:
    raise ValueError(f"the parameter {name!r} is missing")
