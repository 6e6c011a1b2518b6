"""The generic dataclass ↔ Avro mapping (``mailroom.records.avro``): every record class fits its
newest schema field for field, and the mapping handles every type it promises."""

from __future__ import annotations

import dataclasses
import enum
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import fastavro
import pytest

from mailroom.codec import Codec
from mailroom.records import RECORD_TYPES, avro
from mailroom.schemas import shipped_schemas_dir


@pytest.fixture(scope="module")
def codec() -> Codec:
    path = shipped_schemas_dir()
    assert path is not None
    return Codec.load(path)


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_every_record_class_fits_its_newest_schema(codec: Codec, name: str) -> None:
    assert avro.check_schema(RECORD_TYPES[name], codec.newest(name).source) == []


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass(frozen=True)
class Inner:
    label: str
    weight: float = 0.0


@dataclasses.dataclass(frozen=True)
class Everything:
    text: str
    count: int
    flag: bool
    blob: bytes
    at: datetime
    choice: Literal["a", "b"]
    colour: Colour
    maybe: str | None
    inner: Inner
    maybe_inner: Inner | None
    names: tuple[str, ...]
    inners: tuple[Inner, ...]
    labels: Mapping[str, str]
    by_name: dict[str, Inner]
    skipped: str = dataclasses.field(default="", metadata=avro.NOT_SERIALISED)


EVERYTHING_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Everything", "fields": [
        {"name": "text", "type": "string"},
        {"name": "count", "type": "long"},
        {"name": "flag", "type": "boolean"},
        {"name": "blob", "type": "bytes"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "choice", "type": "string"},
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["red", "blue"]}},
        {"name": "maybe", "type": ["null", "string"], "default": None},
        {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "label", "type": "string"}, {"name": "weight", "type": "double"}]}},
        {"name": "maybe_inner", "type": ["null", "Inner"], "default": None},
        {"name": "names", "type": {"type": "array", "items": "string"}},
        {"name": "inners", "type": {"type": "array", "items": "Inner"}},
        {"name": "labels", "type": {"type": "map", "values": "string"}},
        {"name": "by_name", "type": {"type": "map", "values": "Inner"}},
    ],
}


def test_every_promised_type_round_trips_through_fastavro() -> None:
    assert avro.check_schema(Everything, EVERYTHING_SCHEMA) == []
    value = Everything(
        text="t", count=2**40, flag=True, blob=b"\x00\xff", choice="b", colour=Colour.BLUE,
        at=datetime(2026, 12, 2, 10, 0, 0, 123000, tzinfo=UTC), maybe=None,
        inner=Inner("i", 1.5), maybe_inner=Inner("j"), names=("x", "y"),
        inners=(Inner("k"), Inner("l", 2.0)), labels={"a": "b"}, by_name={"m": Inner("m")},
        skipped="not on the wire",
    )
    m = avro.mapping(Everything)
    datum = m.to_avro(value)
    assert "skipped" not in datum and datum["colour"] == "blue"
    parsed = fastavro.parse_schema(EVERYTHING_SCHEMA)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, datum)
    buf.seek(0)
    back = m.from_avro(fastavro.schemaless_reader(buf, parsed))
    assert back == dataclasses.replace(value, skipped="")
    assert isinstance(back.names, tuple) and isinstance(back.inners[0], Inner)


def test_a_field_left_out_on_either_side_is_named() -> None:
    schema = {**EVERYTHING_SCHEMA, "fields": [
        *EVERYTHING_SCHEMA["fields"][1:], {"name": "extra", "type": "string"}]}
    assert avro.check_schema(Everything, schema) == [
        "Everything.text: in the class, not in the schema",
        "Everything.extra: in the schema, not in the class",
    ]


def test_types_that_disagree_are_named() -> None:
    fields = {f["name"]: f for f in EVERYTHING_SCHEMA["fields"]}
    fields["count"] = {"name": "count", "type": "string"}
    fields["maybe"] = {"name": "maybe", "type": "string"}
    fields["names"] = {"name": "names", "type": {"type": "array", "items": "long"}}
    problems = avro.check_schema(Everything, {**EVERYTHING_SCHEMA, "fields": list(fields.values())})
    assert sorted(p.split(":")[0] for p in problems) == [
        "Everything.count", "Everything.maybe", "Everything.names[]"]


def test_an_unsupported_type_is_refused_when_the_mapping_is_built() -> None:
    @dataclasses.dataclass
    class Odd:
        value: set[str]

    with pytest.raises(TypeError, match="no Avro mapping"):
        avro.mapping(Odd)
