"""One mapping between every record dataclass and its Avro datum, derived from the type hints.

A record class inherits :class:`AvroMapped`; its ``to_avro``/``from_avro`` are generated from
its fields' type hints the first time either is called, compiled once and installed on the class,
so the per-record path is a single function call building one dict (or one constructor call) —
no type-hint introspection per call, and no field a hand-written mapping could leave out.

The types a field may have, and the Avro type each maps to (:func:`check_schema` verifies a
class against its schema, in the tests):

=============================  ====================================================
Python                         Avro
=============================  ====================================================
``str``, ``Literal[...]``      ``string`` (choices stay strings: they can grow)
``int`` / ``float`` / ``bool``  ``int`` or ``long`` / ``float`` or ``double`` / ``boolean``
``bytes``                      ``bytes``
``datetime``                   ``long`` with ``timestamp-millis`` (records keep UTC millis)
``X | None``                   ``["null", X]``
``tuple[X, ...]``, ``Sequence``  ``array`` of X (read back as a tuple)
``Mapping[str, X]``, ``dict``    ``map`` of X
a dataclass                    a ``record`` with the same fields
=============================  ====================================================

A field with ``metadata=NOT_SERIALISED`` stays out of the datum and takes its default on the
way back (e.g. the blobs an Email carries to the stage that stores them). A type whose wire form
is another record (a plan's typed steps travel as the schema's generic ``Step``) is registered
with :func:`register_wire`, and the generated code calls its conversion.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Self

#: Field metadata for a field that is not part of the Avro datum.
NOT_SERIALISED: Mapping[str, bool] = types.MappingProxyType({"avro": False})

_PLAIN = (str, int, float, bool, bytes, datetime, type(None))


class AvroMapped:
    """Mixin for record dataclasses: ``to_avro``/``from_avro`` generated from the fields."""

    __slots__ = ()
    SCHEMA: ClassVar[str]

    def to_avro(self) -> dict[str, Any]:
        return _install(type(self)).to_avro(self)

    @classmethod
    def from_avro(cls, datum: Mapping[str, Any]) -> Self:
        return _install(cls).from_avro(datum)  # type: ignore[no-any-return]


@dataclasses.dataclass(frozen=True)
class Mapping_:
    to_avro: Callable[[Any], dict[str, Any]]
    from_avro: Callable[[Mapping[str, Any]], Any]
    from_avro_method: Callable[[type, Mapping[str, Any]], Any]  # installed as a classmethod
    source: str  # the generated code, for the curious and for error messages


_mappings: dict[type, Mapping_] = {}


@dataclasses.dataclass(frozen=True)
class Wire:
    wire: type  # the dataclass that mirrors the schema's record (checked against the schema)
    to_datum: Callable[[Any], dict[str, Any]]  # a value -> the record's datum
    from_datum: Callable[[Mapping[str, Any]], Any]  # and back


_wires: dict[Any, Wire] = {}


def register_wire(
    hint: Any, wire: type, to_datum: Callable[[Any], dict[str, Any]],
    from_datum: Callable[[Mapping[str, Any]], Any],
) -> None:
    """Values of type ``hint`` (a class or a union) travel as the record the dataclass ``wire``
    mirrors; ``to_datum``/``from_datum`` convert (straight to and from the datum: no
    intermediate object per value)."""
    _wires[hint] = Wire(wire, to_datum, from_datum)


def _wire_of(hint: Any) -> Wire | None:
    try:
        return _wires.get(hint)
    except TypeError:  # an unhashable hint has no wire form
        return None


def mapping(cls: type) -> Mapping_:
    """The generated mapping of a dataclass (built once per class)."""
    found = _mappings.get(cls)
    if found is None:
        found = _mappings[cls] = _Generator(cls).build()
    return found


def _install(cls: type) -> Mapping_:
    # Replace the mixin's methods on the class itself: later calls go straight to the
    # generated functions.
    m = mapping(cls)
    cls.to_avro = m.to_avro  # type: ignore[attr-defined]
    cls.from_avro = classmethod(m.from_avro_method)  # type: ignore[attr-defined]
    return m


def serialised_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("avro", True)]


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(hint)):
            return args[0], True
        raise TypeError(f"unsupported union {hint!r}: only X | None maps to Avro here")
    return hint, False


def _sequence_item(hint: Any) -> Any | None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        raise TypeError(f"unsupported tuple {hint!r}: use tuple[X, ...]")
    if origin in (list, Sequence):
        return args[0]
    return None


def _mapping_value(hint: Any) -> Any | None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (dict, Mapping):
        if args[0] is not str:
            raise TypeError(f"unsupported map {hint!r}: Avro map keys are strings")
        return args[1]
    return None


def _is_plain(hint: Any) -> bool:
    return hint in _PLAIN or typing.get_origin(hint) is typing.Literal


class _Generator:
    """Writes the source of an encoder and a decoder function per dataclass (the class and
    every record nested in it), compiled together once."""

    def __init__(self, cls: type) -> None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls!r} is not a dataclass")
        self.cls = cls
        self.names: dict[str, Any] = {}
        self.functions: dict[type, tuple[str, str]] = {}  # class -> (encoder, decoder) names
        self.sources: list[str] = []
        self.counter = 0

    def _name(self, prefix: str, value: Any = None) -> str:
        self.counter += 1
        name = f"_{prefix}{self.counter}"
        if value is not None:
            self.names[name] = value
        return name

    def _record(self, cls: type) -> tuple[str, str]:
        """(encoder, decoder) function names of a dataclass, written on first use."""
        found = self.functions.get(cls)
        if found is not None:
            return found
        enc, dec = self._name("to_"), self._name("from_")
        self.functions[cls] = (enc, dec)
        self.sources.append(f"def {enc}(o):\n    return {self._encode_record(cls, 'o')}\n")
        self.sources.append(f"def {dec}(d):\n    return {self._decode_record(cls, 'd')}\n")
        return enc, dec

    def _encode_record(self, cls: type, value: str) -> str:
        hints = typing.get_type_hints(cls)
        items = "".join(f"\n        {f.name!r}: {self.encode(hints[f.name], f'{value}.{f.name}')},"
                        for f in serialised_fields(cls))
        return f"{{{items}\n    }}"

    def _decode_record(self, cls: type, value: str) -> str:
        # Positional arguments while the fields allow (a keyword call costs more per field).
        hints = typing.get_type_hints(cls)
        args, positional = [], True
        for f in dataclasses.fields(cls):
            if not f.metadata.get("avro", True) or not f.init:
                positional = False
                continue
            positional = positional and not f.kw_only
            expr = self.decode(hints[f.name], f"{value}[{f.name!r}]")
            args.append(f"\n        {expr}," if positional else f"\n        {f.name}={expr},")
        return f"{self._name('C', cls)}({''.join(args)}\n    )"

    # --- dataclass -> datum ------------------------------------------------------------------
    def encode(self, hint: Any, value: str) -> str:
        """An expression turning ``value`` into its datum (``value`` is evaluated once)."""
        if _is_plain(hint):
            return value
        if (wire := _wire_of(hint)) is not None:
            return f"{self._name('W', wire.to_datum)}({value})"
        inner, optional = _unwrap_optional(hint)
        if optional:
            if _is_plain(inner):
                return value
            v = self._name("v")
            return f"(None if ({v} := {value}) is None else {self.encode(inner, v)})"
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return f"{value}.value"
        if (item := _sequence_item(hint)) is not None:
            if _is_plain(item):
                return f"list({value})"
            x = self._name("x")
            return f"[{self.encode(item, x)} for {x} in {value}]"
        if (val := _mapping_value(hint)) is not None:
            if _is_plain(val):
                return f"dict({value})"
            k, x = self._name("k"), self._name("x")
            return f"{{{k}: {self.encode(val, x)} for {k}, {x} in {value}.items()}}"
        if dataclasses.is_dataclass(hint):
            # A record in a list or an option is written inline (no call per item); elsewhere
            # its function is called, so ``value`` is evaluated once.
            if value.isidentifier():
                return self._encode_record(hint, value)  # type: ignore[arg-type]
            return f"{self._record(hint)[0]}({value})"  # type: ignore[arg-type]
        raise TypeError(f"{self.cls.__name__}: no Avro mapping for {hint!r}")

    # --- datum -> dataclass ------------------------------------------------------------------
    def decode(self, hint: Any, value: str) -> str:
        """An expression turning the datum ``value`` back (``value`` is evaluated once)."""
        if _is_plain(hint):
            return value
        if (wire := _wire_of(hint)) is not None:
            return f"{self._name('W', wire.from_datum)}({value})"
        inner, optional = _unwrap_optional(hint)
        if optional:
            if _is_plain(inner):
                return value
            v = self._name("v")
            return f"(None if ({v} := {value}) is None else {self.decode(inner, v)})"
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return f"{self._name('E', hint)}({value})"
        if (item := _sequence_item(hint)) is not None:
            if _is_plain(item):
                return f"tuple({value})"
            x = self._name("x")
            return f"tuple([{self.decode(item, x)} for {x} in {value}])"
        if (val := _mapping_value(hint)) is not None:
            if _is_plain(val):
                return f"dict({value})"
            k, x = self._name("k"), self._name("x")
            return f"{{{k}: {self.decode(val, x)} for {k}, {x} in {value}.items()}}"
        if dataclasses.is_dataclass(hint):
            if value.isidentifier():
                return self._decode_record(hint, value)  # type: ignore[arg-type]
            return f"{self._record(hint)[1]}({value})"  # type: ignore[arg-type]
        raise TypeError(f"{self.cls.__name__}: no Avro mapping for {hint!r}")

    def build(self) -> Mapping_:
        enc, dec = self._record(self.cls)
        # The classmethod's own function (taking the class), so no wrapper runs per call.
        self.sources.append(f"def _from_avro_method(_cls, d):\n"
                            f"    return {self._decode_record(self.cls, 'd')}\n")
        source = "\n".join(self.sources)
        namespace: dict[str, Any] = dict(self.names)
        exec(compile(source, f"<avro mapping of {self.cls.__qualname__}>", "exec"), namespace)
        return Mapping_(namespace[enc], namespace[dec], namespace["_from_avro_method"], source)


# --- checking a class against its schema -------------------------------------------------------
_PRIMITIVES: dict[Any, frozenset[str]] = {
    str: frozenset({"string"}),
    int: frozenset({"int", "long"}),
    float: frozenset({"float", "double"}),
    bool: frozenset({"boolean"}),
    bytes: frozenset({"bytes"}),
}


def check_schema(cls: type, schema: Mapping[str, Any]) -> list[str]:
    """Every way ``cls`` and the record schema ``schema`` (parsed ``.avsc`` JSON) disagree:
    a field on one side only, or types that do not match. Empty when they fit."""
    problems: list[str] = []
    named: dict[str, Any] = {}
    _collect_named(dict(schema), named)
    _check_record(cls, dict(schema), named, cls.__name__, problems)
    return problems


def _collect_named(avro: Any, named: dict[str, Any]) -> None:
    """Every named type (record, enum) a schema defines, by name: fields refer to them."""
    if isinstance(avro, list):
        for a in avro:
            _collect_named(a, named)
    elif isinstance(avro, dict):
        if avro.get("type") in ("record", "enum", "fixed") and "name" in avro:
            named[avro["name"]] = avro
        for f in avro.get("fields", ()):
            _collect_named(f["type"], named)
        for key in ("items", "values", "type"):
            if isinstance(avro.get(key), (dict, list)):
                _collect_named(avro[key], named)


def _check_record(
    cls: type, schema: dict[str, Any], named: dict[str, Any], where: str, problems: list[str]
) -> None:
    if schema.get("type") != "record":
        problems.append(f"{where}: the schema has {schema.get('type')!r}, the class a record")
        return
    hints = typing.get_type_hints(cls)
    ours = {f.name: hints[f.name] for f in serialised_fields(cls)}
    theirs = {f["name"]: f["type"] for f in schema["fields"]}
    for name in sorted(ours.keys() - theirs.keys()):
        problems.append(f"{where}.{name}: in the class, not in the schema")
    for name in sorted(theirs.keys() - ours.keys()):
        problems.append(f"{where}.{name}: in the schema, not in the class")
    for name in sorted(ours.keys() & theirs.keys()):
        _check_type(ours[name], theirs[name], named, f"{where}.{name}", problems)


def _check_type(
    hint: Any, avro: Any, named: dict[str, Any], where: str, problems: list[str]
) -> None:
    if isinstance(avro, str) and avro in named:
        avro = named[avro]
    if (wire := _wire_of(hint)) is not None:
        hint = wire.wire
    inner, optional = _unwrap_optional(hint)
    if optional:
        if not (isinstance(avro, list) and "null" in avro and len(avro) == 2):
            problems.append(f"{where}: optional in the class, the schema has {avro!r}")
            return
        _check_type(inner, next(a for a in avro if a != "null"), named, where, problems)
        return
    if isinstance(avro, list):
        problems.append(f"{where}: the schema has the union {avro!r}, the class {hint!r}")
        return
    kind = avro["type"] if isinstance(avro, dict) else avro
    logical = avro.get("logicalType") if isinstance(avro, dict) else None
    if isinstance(kind, (dict, list)):  # {"type": {...}}: a nested type in a wrapper
        _check_type(hint, kind, named, where, problems)
        return
    ok: bool
    if hint is datetime:
        ok = kind == "long" and logical in ("timestamp-millis", "timestamp-micros")
    elif typing.get_origin(hint) is typing.Literal:
        values = set(typing.get_args(hint))
        ok = kind == "string" or (kind == "enum" and values <= set(avro["symbols"]))
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = {m.value for m in hint}
        ok = kind == "string" or (kind == "enum" and values <= set(avro["symbols"]))
    elif hint in _PRIMITIVES:
        ok = kind in _PRIMITIVES[hint] and logical is None
    elif (item := _sequence_item(hint)) is not None:
        ok = kind == "array"
        if ok:
            _check_type(item, avro["items"], named, where + "[]", problems)
    elif (val := _mapping_value(hint)) is not None:
        ok = kind == "map"
        if ok:
            _check_type(val, avro["values"], named, where + "{}", problems)
    elif dataclasses.is_dataclass(hint):
        ok = kind == "record"
        if ok:
            _check_record(hint, avro, named, where, problems)  # type: ignore[arg-type]
    else:
        problems.append(f"{where}: no Avro mapping for {hint!r}")
        return
    if not ok:
        problems.append(f"{where}: the class has {hint!r}, the schema {avro!r}")
