"""Every record class survives the codec: encode with its schema, decode, compare equal.

Values are generated for every field from the dataclass's own type hints, optional and nested
records included, so a field a ``to_avro`` forgets (or a ``from_avro`` misreads) fails here —
as ``report.original_message_id`` once did, present in memory and ``None`` after a round trip.
Fields whose values the record restricts (choices, claim-check hashes) draw from the allowed
values; a combination the record itself refuses is skipped, not forced.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailroom.codec import Codec
from mailroom.records import RECORD_TYPES, action, change, email, mailbox, raw
from mailroom.schemas import shipped_schemas_dir

# Avro strings are UTF-8: lone surrogates cannot be written (the stages clean them first).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
HEX = st.text("0123456789abcdef", min_size=64, max_size=64)
TIMES = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
                     timezones=st.just(UTC))

#: (class name, field name) -> values the record accepts there.
CHOICES: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("Email", "direction"): st.sampled_from(sorted(email.DIRECTIONS)),
    ("Report", "kind"): st.sampled_from(sorted(email.REPORT_KINDS)),
    ("Delivery", "copy_kind"): st.sampled_from(email.COPY_KINDS),
    ("MailboxRecord", "owner_kind"): st.sampled_from(sorted(raw.OWNER_KINDS)),
    ("MailboxRecord", "protocol"): st.sampled_from(sorted(raw.PROTOCOLS)),
    ("MailboxRecord", "after_ingest"): st.sampled_from(sorted(mailbox.AFTER_INGEST)),
    ("Step", "kind"): st.sampled_from(action.STEP_KINDS),
    ("Condition", "kind"): st.sampled_from(sorted(action.CONDITION_KINDS)),
    ("Candidate", "method"): st.sampled_from(sorted(action.CANDIDATE_METHODS)),
    ("RawMail", "blob_ref"): st.none() | HEX,
    ("DeadLetter", "blob_ref"): st.none() | HEX,
    ("RecordChange", "record_type"): st.sampled_from(sorted(change.RECORD_TYPES)),
}


def for_type(hint: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(for_type(a) for a in args))
    if hint is type(None):
        return st.none()
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is tuple or (origin is not None and origin is Sequence):
        return st.lists(for_type(args[0]), max_size=3).map(tuple)
    if origin is Mapping or origin is dict:
        return st.dictionaries(for_type(args[0]), for_type(args[1]), max_size=3)
    if dataclasses.is_dataclass(hint):
        return for_record(hint)
    simple = {str: TEXT, bytes: st.binary(max_size=16), bool: st.booleans(),
              int: st.integers(-(2**31), 2**31 - 1), datetime: TIMES}
    if hint in simple:
        return simple[hint]
    raise TypeError(f"no strategy for {hint!r}: teach for_type this type")


def _field_strategy(cls: type, name: str, hint: Any) -> st.SearchStrategy[Any]:
    chosen = CHOICES.get((cls.__name__, name))
    return chosen if chosen is not None else for_type(hint)


def for_record(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _field_strategy(cls, f.name, hints[f.name])
              for f in dataclasses.fields(cls) if f.compare}  # compare=False: not serialised

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        values = {name: draw(strategy) for name, strategy in fields.items()}
        try:
            return cls(**values)
        except ValueError:
            assume(False)  # a combination the record refuses (e.g. content and blob_ref)

    return build()


@pytest.fixture(scope="module")
def codec() -> Codec:
    path = shipped_schemas_dir()
    assert path is not None
    return Codec.load(path)


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_every_record_round_trips_through_its_schema(codec: Codec, name: str) -> None:
    cls = RECORD_TYPES[name]

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(for_record(cls))
    def round_trip(record: Any) -> None:
        assert codec.decode_record(codec.encode_record(record), cls) == record

    round_trip()


def test_every_schema_has_a_record_class(codec: Codec) -> None:
    assert set(codec.names) == set(RECORD_TYPES)
