from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from kernel_samples import AT, raw_mail, samples

from mailroom.codec import Codec
from mailroom.records import RECORD_TYPES, TraceEvent, raw_identity
from mailroom.schemas import shipped_schemas_dir


def test_raw_identity_imap_and_pop3() -> None:
    assert raw_mail().identity == "mbx-1/INBOX/1700000000/42"
    assert raw_identity("m", "pop3", uidl="U1") == "m/pop3/U1"
    with pytest.raises(ValueError):
        raw_identity("m", "imap", "INBOX", uidvalidity=None, uid=3)


def test_raw_mail_needs_exactly_one_of_content_and_blob_ref() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        dataclasses.replace(raw_mail(), blob_ref="ab" * 32)
    with pytest.raises(ValueError, match="exactly one"):
        dataclasses.replace(raw_mail(), content=None)
    with pytest.raises(ValueError, match="sha256"):
        dataclasses.replace(raw_mail(), content=None, blob_ref="not-a-hash")


def test_choices_are_checked() -> None:
    with pytest.raises(ValueError, match="owner_kind"):
        dataclasses.replace(raw_mail(), owner_kind="robot")  # type: ignore[arg-type]


def test_times_are_utc_millis_and_naive_is_refused() -> None:
    cet = timezone(timedelta(hours=1))
    at = datetime(2026, 1, 1, 10, 0, 0, 123456, cet)
    event = TraceEvent(key="k", stage="s", event="fetched", at=at)
    assert event.at == datetime(2026, 1, 1, 9, 0, 0, 123000, tzinfo=UTC)
    assert event.at.tzinfo is not None and event.at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive"):
        TraceEvent(key="k", stage="s", event="fetched", at=datetime(2026, 1, 1))


def test_records_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        raw_mail().uid = 3  # type: ignore[misc]


def test_every_sample_type_is_registered() -> None:
    assert {type(r) for r in samples()} <= set(RECORD_TYPES.values())


def test_to_avro_gives_exactly_the_newest_schema_fields() -> None:
    """A field added to a schema but not to its record (or back) fails here, not in production."""
    path = shipped_schemas_dir()
    assert path is not None
    codec = Codec.load(path)
    for record in samples():
        schema_fields = {f["name"] for f in codec.newest(record.SCHEMA).source["fields"]}
        assert set(record.to_avro()) == schema_fields, record.SCHEMA


def test_sample_times() -> None:
    assert raw_mail().fetched_at == AT
