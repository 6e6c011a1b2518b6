"""The compiled Avro writers and readers are fastavro's bytes and datums, on every schema.

Random datums of every version in ``schemas/`` (nulls and values, empty and long arrays and maps,
text beyond the BMP, longs at their limits, times before the epoch) are written by both and must
give the same bytes; what fastavro wrote is read back by both and must give the same datum.
Every truncated record is refused, and a corrupted one is either refused or read as fastavro
reads it.
"""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest

from mailroom.avrobinary import Unsupported, compile_schema
from mailroom.codec import Codec
from mailroom.errors import MalformedRecordError
from mailroom.schemas import load_dir, shipped_schemas_dir

SCHEMAS = shipped_schemas_dir()
assert SCHEMAS is not None
VERSIONS = [v for vs in load_dir(SCHEMAS).values() for v in vs]
TEXT = "aé€😀\u0000 \r\n\"'\\<>"  # ASCII, two- three- and four-byte UTF-8, a NUL


class Datums:
    """Random datums of a schema: the types ``schemas/`` uses, at their edges."""

    def __init__(self, seed: int, schema: Any) -> None:
        self.rng = random.Random(seed)
        self.named: dict[str, Any] = {}
        self.depth = 0  # of arrays and maps: long ones only at the top
        self._collect(schema)

    def _collect(self, avro: Any) -> None:
        """Every named record, so a reference met before its definition is known."""
        if isinstance(avro, list):
            for a in avro:
                self._collect(a)
        elif isinstance(avro, dict):
            if avro.get("type") == "record":
                self.named[avro["name"]] = avro
                for f in avro["fields"]:
                    self._collect(f["type"])
            for key in ("items", "values"):
                if key in avro:
                    self._collect(avro[key])

    def of(self, avro: Any) -> Any:
        rng = self.rng
        if isinstance(avro, str) and avro in self.named:
            avro = self.named[avro]
        if isinstance(avro, list):
            branch = rng.choice(avro)
            return None if branch == "null" else self.of(branch)
        if isinstance(avro, dict):
            kind = avro["type"]
            if kind == "record":
                return {f["name"]: self.of(f["type"]) for f in avro["fields"]}
            if kind in ("array", "map"):
                self.depth += 1
                try:
                    if kind == "array":
                        return [self.of(avro["items"]) for _ in range(self._count())]
                    return {self._text(): self.of(avro["values"]) for _ in range(self._count())}
                finally:
                    self.depth -= 1
            if avro.get("logicalType") == "timestamp-millis":
                millis = rng.choice([0, -1, 1, rng.randrange(-10**13, 10**13)])
                return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
            return self.of(kind)
        if avro == "null":
            return None
        if avro == "boolean":
            return rng.random() < 0.5
        if avro == "int":
            return rng.choice([0, -1, 63, 64, -65, 2**31 - 1, -(2**31), rng.randrange(-999, 999)])
        if avro == "long":
            return rng.choice([0, 1, -1, 1023, 1024, 2**63 - 1, -(2**63),
                               rng.randrange(-(2**40), 2**40)])
        if avro == "string":
            return self._text()
        if avro == "bytes":
            return rng.randbytes(rng.choice([0, 1, 127, 128, 1500]))
        raise AssertionError(f"no generator for {avro!r}")

    def _count(self) -> int:
        return self.rng.choice([0, 0, 1, 2, 5, 70] if self.depth == 1 else [0, 1, 3])

    def _text(self) -> str:
        n = self.rng.choice([0, 1, 10, 200, 1100])
        return "".join(self.rng.choice(TEXT) for _ in range(n))


def _fastavro_bytes(parsed: Any, datum: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, datum)
    return buf.getvalue()


def _fastavro_read(parsed: Any, data: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(data), parsed, None)


@pytest.mark.parametrize("version", VERSIONS, ids=[v.label for v in VERSIONS])
def test_same_bytes_and_datums_as_fastavro(version: Any) -> None:
    write, read = compile_schema(version.source)
    for seed in range(40):
        datum = Datums(seed, version.source).of(version.source)
        expected = _fastavro_bytes(version.parsed, datum)
        out = bytearray()
        write(datum, out)
        assert bytes(out) == expected, seed
        got, end = read(expected, 0)
        assert end == len(expected)
        assert got == _fastavro_read(version.parsed, expected), seed


def test_every_shipped_schema_is_compiled() -> None:
    codec = Codec.load(SCHEMAS)
    assert sorted(codec._writers) == codec.names
    assert all(r.compiled is not None for r in codec._readings.values() if r.reader is None)


@pytest.mark.parametrize("name", ["email", "plan", "raw_mail"])
def test_truncated_and_corrupted_records(name: str) -> None:
    codec = Codec.load(SCHEMAS)
    version = codec.newest(name)
    rng = random.Random(3)
    for seed in range(5):
        data = codec.encode(name, Datums(seed, version.source).of(version.source))
        for cut in range(len(data) - 1, 9, -max(1, len(data) // 300)):
            with pytest.raises(MalformedRecordError):
                codec.decode(data[:cut])
        for _ in range(300):
            spoilt = bytearray(data)
            for _ in range(rng.randrange(1, 4)):
                spoilt[rng.randrange(10, len(spoilt))] = rng.randrange(256)
            try:
                _, datum = codec.decode(bytes(spoilt))
            except MalformedRecordError:
                continue
            # Read: then exactly as fastavro reads it.
            assert datum == _fastavro_read(version.parsed, bytes(spoilt[10:]))


def test_a_record_the_schema_refuses_is_malformed() -> None:
    codec = Codec.load(SCHEMAS)
    datum = Datums(1, codec.newest("raw_mail").source).of(codec.newest("raw_mail").source)
    for field, wrong in [("uid", "seven"), ("mailbox_id", None), ("uid", 2**64)]:
        with pytest.raises(MalformedRecordError, match="cannot encode as raw_mail"):
            codec.encode("raw_mail", {**datum, field: wrong})
    with pytest.raises(MalformedRecordError):
        codec.encode("raw_mail", {k: v for k, v in datum.items() if k != "mailbox_id"})


def test_a_schema_not_compiled_stays_with_fastavro(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "Odd", "fields": [
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "BLUE"]}},
        {"name": "either", "type": ["null", "string", "long"]},
    ]}
    with pytest.raises(Unsupported):
        compile_schema(schema)
    (tmp_path / "odd.v1.avsc").write_text(json.dumps(schema))
    codec = Codec.load(tmp_path)
    assert "odd" not in codec._writers
    for datum in ({"colour": "BLUE", "either": 7}, {"colour": "RED", "either": "x"}):
        assert codec.decode(codec.encode("odd", datum)) == ("odd", datum)


def test_a_long_beyond_64_bits_is_malformed() -> None:
    codec = Codec.load(SCHEMAS)
    datum = Datums(2, codec.newest("raw_mail").source).of(codec.newest("raw_mail").source)
    good = codec.encode("raw_mail", {**datum, "uid": -(2**63)})
    assert b"\xff" * 9 + b"\x01" in good  # the zigzag varint of the lowest long
    # The same ten bytes with bits past the 64th set: no long, whatever fastavro makes of it.
    spoilt = good.replace(b"\xff" * 9 + b"\x01", b"\xff" * 9 + b"\x7f", 1)
    with pytest.raises(MalformedRecordError, match="out of range"):
        codec.decode(spoilt)
