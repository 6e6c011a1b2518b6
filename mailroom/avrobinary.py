"""Avro's binary encoding, compiled per schema: one writer and one reader function per record
schema, written as Python source once and byte for byte what fastavro writes and reads.

Why: every email crosses the codec five times (unwrap writes its Email, route reads it and
writes its Plan, persist reads the Plan and then its Email), and fastavro's generic walk of the
schema — a dispatch per field, a validation of each union's branch — cost 55–80 µs per Email
record each way. Straight-line code that knows the schema does the same in a fraction
(``bench/codec.py``).

What is compiled: records whose fields are null, boolean, int, long, float, double, string,
bytes, records (also by name), arrays, maps, unions of null with one other type, and long with
the ``timestamp-millis`` logical type — everything ``schemas/`` uses. A schema with anything
else raises :class:`Unsupported` and the codec keeps fastavro for it. Reading an older writer's
version (schema resolution) stays with fastavro too: the compiled reader reads only the schema
it was made from.

The tests hold both sides to fastavro on random datums of every schema in ``schemas/``: the
same bytes written, the same datum read, and every truncated or corrupted input refused.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

#: (datum) -> its bytes, appended to ``out``
Writer = Callable[[Mapping[str, Any], bytearray], None]
#: (buffer, position) -> (datum, position after it)
Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_PER_DAY = 86_400_000
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_FLOAT, _DOUBLE = struct.Struct("<f"), struct.Struct("<d")
#: zigzag varints of 0..1023, the lengths and counts almost every field has
_SMALL = [bytes([z]) if z < 0x80 else bytes([(z & 0x7F) | 0x80, z >> 7])
          for z in ((n << 1) for n in range(1024))]


class Unsupported(Exception):
    """The schema uses a type this module does not compile (the codec keeps fastavro)."""


# --- run-time helpers the generated code calls --------------------------------------------------
def write_long(out: bytearray, n: int) -> None:
    if 0 <= n < 1024:
        out += _SMALL[n]
        return
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long")
    z = (n << 1) ^ (n >> 63)
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def write_string(out: bytearray, s: str) -> None:
    b = s.encode()
    n = len(b)
    out += _SMALL[n] if n < 1024 else _varint(n)
    out += b


def write_bytes(out: bytearray, b: bytes) -> None:
    n = len(b)
    out += _SMALL[n] if n < 1024 else _varint(n)
    out += b


def _varint(n: int) -> bytes:
    out = bytearray()
    write_long(out, n)
    return bytes(out)


def millis(value: Any) -> Any:
    """A ``timestamp-millis`` datum as fastavro writes it (a datetime becomes epoch millis)."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is not None:
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + int(delta.microseconds / 1000)
    # fastavro reads a naive datetime as local time
    return int(time.mktime(value.timetuple())) * 1000 + int(value.microsecond / 1000)


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    pos += 1
    z = b & 0x7F
    shift = 7
    while b & 0x80:
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        shift += 7
        if shift > 70:
            raise ValueError("an Avro long of more than ten bytes")
    if z >> 64:  # ten bytes can carry 70 bits; a long has 64 (fastavro wraps them silently)
        raise ValueError("an Avro long out of range")
    return (z >> 1) ^ -(z & 1), pos


def read_fixed(buf: bytes, pos: int, n: int) -> int:
    """The position after ``n`` bytes at ``pos`` (refused past the end)."""
    end = pos + n
    if end > len(buf):
        raise EOFError(f"{n} bytes at {pos}, past the end ({len(buf)})")
    return end


def read_boolean(buf: bytes, pos: int) -> tuple[bool, int]:
    b = buf[pos]
    if b > 1:
        raise ValueError(f"{b} is not an Avro boolean")
    return b == 1, pos + 1


def from_millis(n: int) -> datetime:
    return _EPOCH + timedelta(microseconds=n * 1000)


def block_count(buf: bytes, pos: int, n: int) -> tuple[int, int]:
    """A block's negative item count ``n`` read at ``pos``: its size follows (skipped)."""
    _, pos = read_long(buf, pos)
    return -n, pos


_HELPERS: dict[str, Any] = {
    "_wl": write_long, "_ws": write_string, "_wb": write_bytes, "_ms": millis,
    "_rl": read_long, "_rfix": read_fixed,
    "_rbool": read_boolean, "_fms": from_millis, "_bc": block_count,
    "_pf": _FLOAT.pack, "_pd": _DOUBLE.pack, "_uf": _FLOAT.unpack_from,
    "_ud": _DOUBLE.unpack_from,
}


# --- the compiler ------------------------------------------------------------------------------
def compile_schema(schema: Mapping[str, Any]) -> tuple[Writer, Reader]:
    """The writer and reader of a record schema (parsed ``.avsc`` JSON or fastavro's parsed
    form); :class:`Unsupported` when it uses a type not compiled here."""
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        raise Unsupported("only a record schema is compiled")
    return _Compiler(schema).build()


class _Compiler:
    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self.named: dict[str, Mapping[str, Any]] = {}
        self.functions: dict[str, tuple[str, str]] = {}  # record name -> (writer, reader)
        self.sources: list[str] = []
        self.names: dict[str, Any] = dict(_HELPERS)
        self.counter = 0

    def _var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def build(self) -> tuple[Writer, Reader]:
        writer, reader = self._record_functions(self.schema)
        namespace = dict(self.names)
        exec(compile("\n".join(self.sources), f"<avro binary of {self.schema.get('name')}>",
                     "exec"), namespace)
        return namespace[writer], namespace[reader]

    def _full_name(self, schema: Mapping[str, Any]) -> str:
        name = str(schema["name"])
        namespace = schema.get("namespace")
        return name if "." in name or not namespace else f"{namespace}.{name}"

    def _resolve(self, avro: Any) -> Any:
        if isinstance(avro, str) and avro not in _PRIMITIVE_TYPES:
            found = self.named.get(avro)
            if found is None:
                short = avro.rsplit(".", 1)[-1]
                found = next((s for n, s in self.named.items() if n.rsplit(".", 1)[-1] == short),
                             None)
            if found is None:
                raise Unsupported(f"unknown named type {avro!r}")
            return found
        return avro

    def _record_functions(self, schema: Mapping[str, Any]) -> tuple[str, str]:
        name = self._full_name(schema)
        if name in self.functions:
            return self.functions[name]
        self.named[name] = schema
        writer, reader = self._var("_w_"), self._var("_r_")
        self.functions[name] = (writer, reader)
        lines = [f"def {writer}(d, out):"]
        for field in schema["fields"]:
            value = self._var("v")
            lines.append(f"    {value} = {self._field_value(field)}")
            lines += self._write(field["type"], value, "    ")
        lines.append("    return None")
        self.sources.append("\n".join(lines) + "\n")
        lines = [f"def {reader}(buf, pos):", "    size = len(buf)"]
        items = []
        for field in schema["fields"]:
            value = self._var("v")
            lines += self._read(field["type"], value, "    ")
            items.append(f"{field['name']!r}: {value}")
        lines.append(f"    return {{{', '.join(items)}}}, pos")
        self.sources.append("\n".join(lines) + "\n")
        return writer, reader

    def _field_value(self, field: Mapping[str, Any]) -> str:
        # As fastavro: a missing field takes the schema's default; without one it is an error.
        name = field["name"]
        if "default" in field:
            default = self._var("_default_")
            self.names[default] = field["default"]
            return f"d.get({name!r}, {default})"
        return f"d[{name!r}]"

    # --- writing ------------------------------------------------------------------------------
    def _write(self, avro: Any, v: str, ind: str) -> list[str]:
        avro = self._resolve(avro)
        if isinstance(avro, list):
            return self._write_union(avro, v, ind)
        if isinstance(avro, Mapping):
            kind = avro.get("type")
            if kind == "record":
                writer, _ = self._record_functions(avro)
                return [f"{ind}{writer}({v}, out)"]
            if kind == "array":
                item = self._var("x")
                return [f"{ind}if {v}:",
                        f"{ind}    _wl(out, len({v}))",
                        f"{ind}    for {item} in {v}:",
                        *self._write(avro["items"], item, ind + "        "),
                        f"{ind}out.append(0)"]
            if kind == "map":
                key, item = self._var("k"), self._var("x")
                return [f"{ind}if {v}:",
                        f"{ind}    _wl(out, len({v}))",
                        f"{ind}    for {key}, {item} in {v}.items():",
                        f"{ind}        _ws(out, {key})",
                        *self._write(avro["values"], item, ind + "        "),
                        f"{ind}out.append(0)"]
            if _is_millis(avro):
                return [f"{ind}_wl(out, _ms({v}))"]
            return self._write(_primitive(avro), v, ind)
        if avro == "null":
            return [f"{ind}if {v} is not None:",
                    f"{ind}    raise ValueError('null field with a value')"]
        if avro == "boolean":
            return [f"{ind}out.append(1 if {v} else 0)"]
        if avro in ("int", "long"):
            return [f"{ind}_wl(out, {v})"]
        if avro == "float":
            return [f"{ind}out += _pf({v})"]
        if avro == "double":
            return [f"{ind}out += _pd({v})"]
        if avro == "string":
            return [f"{ind}_ws(out, {v})"]
        if avro == "bytes":
            return [f"{ind}_wb(out, {v})"]
        raise Unsupported(f"type {avro!r}")

    def _nullable(self, union: list[Any]) -> tuple[int, Any]:
        if len(union) != 2 or "null" not in union:
            raise Unsupported("a union other than null and one type")
        null = union.index("null")
        return null, union[1 - null]

    def _write_union(self, union: list[Any], v: str, ind: str) -> list[str]:
        null, other = self._nullable(union)
        return [f"{ind}if {v} is None:",
                f"{ind}    out.append({null * 2})",
                f"{ind}else:",
                f"{ind}    out.append({(1 - null) * 2})",
                *self._write(other, v, ind + "    ")]

    # --- reading ------------------------------------------------------------------------------
    def _long(self, v: str, ind: str) -> list[str]:
        """Read a long into ``v``: one byte inline (nearly every length, count and branch),
        longer ones by the helper."""
        return [f"{ind}{v} = buf[pos]",
                f"{ind}if {v} < 0x80:",
                f"{ind}    {v} = ({v} >> 1) ^ -({v} & 1)",
                f"{ind}    pos += 1",
                f"{ind}else:",
                f"{ind}    {v}, pos = _rl(buf, pos)"]

    def _sized(self, v: str, ind: str, decode: bool) -> list[str]:
        """A string's or bytes' length, then its bytes (refused past the end)."""
        n = self._var("n")
        return [*self._long(n, ind),
                f"{ind}if {n} < 0 or pos + {n} > size:",
                f"{ind}    raise EOFError(f'{{{n}}} bytes at {{pos}}, past the end')",
                f"{ind}{v} = buf[pos:pos + {n}]" + (".decode()" if decode else ""),
                f"{ind}pos += {n}"]

    def _read(self, avro: Any, v: str, ind: str) -> list[str]:
        avro = self._resolve(avro)
        if isinstance(avro, list):
            null, other = self._nullable(avro)
            index = self._var("i")
            return [*self._long(index, ind),
                    f"{ind}if {index} == {null}:",
                    f"{ind}    {v} = None",
                    f"{ind}elif {index} == {1 - null}:",
                    *self._read(other, v, ind + "    "),
                    f"{ind}else:",
                    f"{ind}    raise ValueError(f'union branch {{{index}}} of two')"]
        if isinstance(avro, Mapping):
            kind = avro.get("type")
            if kind == "record":
                _, reader = self._record_functions(avro)
                return [f"{ind}{v}, pos = {reader}(buf, pos)"]
            if kind in ("array", "map"):
                n, item = self._var("n"), self._var("x")
                is_map = kind == "map"
                key = self._var("k")
                inner = self._read(avro["values" if is_map else "items"], item, ind + "        ")
                count = [*self._long(n, ind), f"{ind}if {n} < 0:",
                         f"{ind}    {n}, pos = _bc(buf, pos, {n})"]
                return [f"{ind}{v} = {{}}" if is_map else f"{ind}{v} = []",
                        *count,
                        f"{ind}while {n}:",
                        f"{ind}    for _ in range({n}):",
                        *(self._sized(key, ind + "        ", decode=True) if is_map else []),
                        *inner,
                        (f"{ind}        {v}[{key}] = {item}" if is_map
                         else f"{ind}        {v}.append({item})"),
                        *[f"    {line}" for line in count]]
            if _is_millis(avro):
                return [*self._long(v, ind), f"{ind}{v} = _fms({v})"]
            return self._read(_primitive(avro), v, ind)
        if avro == "null":
            return [f"{ind}{v} = None"]
        if avro == "boolean":
            return [f"{ind}{v}, pos = _rbool(buf, pos)"]
        if avro in ("int", "long"):
            return self._long(v, ind)
        if avro == "float":
            return [f"{ind}{v} = _uf(buf, pos)[0]", f"{ind}pos = _rfix(buf, pos, 4)"]
        if avro == "double":
            return [f"{ind}{v} = _ud(buf, pos)[0]", f"{ind}pos = _rfix(buf, pos, 8)"]
        if avro == "string":
            return self._sized(v, ind, decode=True)
        if avro == "bytes":
            return self._sized(v, ind, decode=False)
        raise Unsupported(f"type {avro!r}")


_PRIMITIVE_TYPES = frozenset({"null", "boolean", "int", "long", "float", "double", "string",
                              "bytes"})


def _is_millis(avro: Mapping[str, Any]) -> bool:
    return avro.get("type") == "long" and avro.get("logicalType") == "timestamp-millis"


def _primitive(avro: Mapping[str, Any]) -> str:
    """A primitive written as an object (``{"type": "string"}``); anything else with ``type``
    and more (a logical type other than timestamp-millis, an enum, fixed) is not compiled."""
    kind = avro.get("type")
    if kind in _PRIMITIVE_TYPES and set(avro) == {"type"}:
        return str(kind)
    if "logicalType" in avro:
        raise Unsupported(f"logical type {avro['logicalType']!r}")
    raise Unsupported(f"type {kind!r}")
