"""The generic mapping gives the same datum, hence the same bytes, as each record's hand-written
``to_avro``/``from_avro``, on the samples and on generated records of every class."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from kernel_samples import samples
from test_record_roundtrip import for_record

from mailroom.codec import Codec
from mailroom.records import RECORD_TYPES, avro
from mailroom.schemas import shipped_schemas_dir


@pytest.fixture(scope="module")
def codec() -> Codec:
    path = shipped_schemas_dir()
    assert path is not None
    return Codec.load(path)


def _same(codec: Codec, record: Any) -> None:
    cls = type(record)
    m = avro.mapping(cls)
    generic, by_hand = m.to_avro(record), record.to_avro()
    assert codec.encode(cls.SCHEMA, generic) == codec.encode(cls.SCHEMA, by_hand)
    _, datum = codec.decode(codec.encode(cls.SCHEMA, by_hand))
    assert m.from_avro(datum) == cls.from_avro(datum) == record


def test_samples_encode_identically(codec: Codec) -> None:
    for record in samples():
        _same(codec, record)


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_generated_records_encode_identically(codec: Codec, name: str) -> None:
    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(for_record(RECORD_TYPES[name]))
    def same(record: Any) -> None:
        _same(codec, record)

    same()
