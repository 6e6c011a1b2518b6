"""The Avro single-object codec, fingerprints and the schema compatibility rule."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import avro.schema
import fastavro.schema
import pytest
from kernel_samples import raw_mail, samples

from mailroom.codec import MARKER, Codec
from mailroom.errors import ConfigError, MalformedRecordError, UnknownSchemaError
from mailroom.records import Plan, RawMail
from mailroom.schemas import check_compatibility, fingerprint, load_dir, shipped_schemas_dir

FIXTURES = Path(__file__).parent / "schema_fixtures"


@pytest.fixture(scope="module")
def shipped() -> Path:
    path = shipped_schemas_dir()
    assert path is not None, "schemas/ not found next to the mailroom package"
    return path


@pytest.fixture(scope="module")
def codec(shipped: Path) -> Codec:
    return Codec.load(shipped)


# --- the shipped schemas -------------------------------------------------------------------------
def test_shipped_schemas_are_versioned_and_in_the_mailroom_namespace(shipped: Path) -> None:
    for name, versions in load_dir(shipped).items():
        for v in versions:
            assert v.versioned_name, f"{v.path.name}: rename to {name}.v{v.version}.avsc"
            assert v.source.get("namespace") == "mailroom", v.path.name


def test_every_shipped_version_is_compatible_both_ways_with_earlier_ones(shipped: Path) -> None:
    for name, versions in load_dir(shipped).items():
        problems = check_compatibility(versions)
        assert not problems, f"{name}: " + "; ".join(map(str, problems))


def test_fingerprints_agree_with_the_avro_package(shipped: Path) -> None:
    for versions in load_dir(shipped).values():
        for v in versions:
            assert v.fingerprint == bytes.fromhex(
                fastavro.schema.fingerprint(v.canonical, "CRC-64-AVRO")
            )
            # avro parses the canonical form back and fingerprints it the same way...
            assert avro.schema.parse(v.canonical).fingerprint() == v.fingerprint, v.label
            # ...and gets the same fingerprint from the .avsc itself whenever the schema has no
            # logical type (see the next test for why those differ in avro 1.12).
            parsed = avro.schema.parse(json.dumps(v.source))
            if "logicalType" not in json.dumps(v.source):
                assert parsed.fingerprint() == v.fingerprint, v.label


def test_avro_package_keeps_logical_types_in_the_canonical_form() -> None:
    """Pins a known deviation of ``avro`` 1.12 from the specification's [STRIP] rule.

    The specification (and Java, and fastavro) reduce ``{"type":"long","logicalType":...}`` to
    ``"long"``; ``avro`` keeps ``{"type":"long"}``. Mailroom follows the specification, so its
    fingerprints match Java/fastavro writers. If this test fails, ``avro`` was fixed: the
    fingerprint test above can then compare every schema directly.
    """
    timestamp = '{"type": "long", "logicalType": "timestamp-millis"}'
    assert fastavro.schema.to_parsing_canonical_form(json.loads(timestamp)) == '"long"'
    assert avro.schema.parse(timestamp).canonical_form == '{"type":"long"}'


@pytest.mark.parametrize(
    ("schema", "crc64"),
    [('"int"', "8f5c393f1ad57572"), ('"long"', "b71df49344e154d0"),
     ('"double"', "7e95ab32c035758e")],
)
def test_fingerprint_matches_published_vectors(schema: str, crc64: str) -> None:
    # Vectors from the Avro project's own test suite (CRC-64-AVRO, little-endian).
    canonical = fastavro.schema.to_parsing_canonical_form(json.loads(schema))
    assert fingerprint(canonical).hex() == crc64
    assert avro.schema.parse(schema).fingerprint().hex() == crc64


# --- encoding and decoding -----------------------------------------------------------------------
def test_every_record_round_trips(codec: Codec) -> None:
    for record in samples():
        data = codec.encode_record(record)
        assert data[:2] == MARKER
        assert data[2:10] == codec.newest(record.SCHEMA).fingerprint
        assert codec.decode_record(data, type(record)) == record
        assert codec.decode_any(data) == record
        name, datum = codec.decode(data)
        assert name == record.SCHEMA and datum == record.to_avro()


def test_large_raw_mail_round_trips(codec: Codec) -> None:
    record = raw_mail(b"x" * 3_000_000)
    assert codec.decode_record(codec.encode_record(record), RawMail) == record


def test_unknown_fingerprint_pauses_instead_of_poison(codec: Codec) -> None:
    data = bytearray(codec.encode_record(raw_mail()))
    data[2:10] = b"\x00" * 8
    with pytest.raises(UnknownSchemaError) as info:
        codec.decode(bytes(data))
    assert info.value.fingerprint == b"\x00" * 8
    assert not isinstance(info.value, MalformedRecordError)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: b"",  # empty value
        lambda d: b"{" + d[1:],  # no marker (e.g. JSON written by mistake)
        lambda d: d[:20],  # truncated payload
        lambda d: d + b"\x00\x01",  # trailing bytes
    ],
    ids=["empty", "no-marker", "truncated", "trailing"],
)
def test_damaged_values_are_poison(codec: Codec, damage) -> None:
    with pytest.raises(MalformedRecordError):
        codec.decode(damage(codec.encode_record(raw_mail())))


def test_decode_record_refuses_another_schema(codec: Codec) -> None:
    with pytest.raises(MalformedRecordError, match="expected a plan"):
        codec.decode_record(codec.encode_record(raw_mail()), Plan)


def test_a_datum_the_schema_refuses_cannot_be_encoded(codec: Codec) -> None:
    datum = raw_mail().to_avro() | {"size": "big"}
    with pytest.raises(MalformedRecordError, match="cannot encode"):
        codec.encode("raw_mail", datum)


# --- versions side by side -----------------------------------------------------------------------
def _schemas_with(tmp_path: Path, shipped: Path, fixture: str | None) -> Path:
    folder = tmp_path / (fixture or "v1")
    folder.mkdir()
    shutil.copy(shipped / "raw_mail.v1.avsc", folder)
    if fixture:
        shutil.copy(FIXTURES / fixture / "raw_mail.v2.avsc", folder)
    return folder


def test_old_and_new_versions_read_each_other(tmp_path: Path, shipped: Path) -> None:
    v1 = Codec.load(_schemas_with(tmp_path, shipped, None))
    v1_and_v2 = Codec.load(_schemas_with(tmp_path, shipped, "compatible"))
    assert check_compatibility(v1_and_v2.versions["raw_mail"]) == []

    old_record = v1.encode_record(raw_mail())
    name, datum = v1_and_v2.decode(old_record)  # new reader, old writer: default filled in
    assert name == "raw_mail" and datum["x_spam_score"] is None

    new_record = v1_and_v2.encode("raw_mail", {**datum, "x_spam_score": 0.5})
    with pytest.raises(UnknownSchemaError):  # a v1-only process has never seen v2
        v1.decode(new_record)
    # A v1 process given v2's schema file reads v2 records into v1 (the rolling upgrade case).
    v2_reader_for_v1 = Codec({"raw_mail": [v1_and_v2.versions["raw_mail"][1],
                                           v1.versions["raw_mail"][0]]})
    assert "x_spam_score" not in v2_reader_for_v1.decode(new_record)[1]


def test_checker_rejects_an_incompatible_version(tmp_path: Path, shipped: Path) -> None:
    versions = load_dir(_schemas_with(tmp_path, shipped, "incompatible"))["raw_mail"]
    problems = check_compatibility(versions)
    directions = {(p.reader.version, p.writer.version) for p in problems}
    assert directions == {(2, 1), (1, 2)}
    assert any("mailbox_ref" in str(p) for p in problems)


def test_unversioned_and_versioned_file_of_one_version_conflict(tmp_path: Path,
                                                                 shipped: Path) -> None:
    shutil.copy(shipped / "plan.v1.avsc", tmp_path / "plan.v1.avsc")
    shutil.copy(shipped / "plan.v1.avsc", tmp_path / "plan.avsc")
    with pytest.raises(ConfigError, match="both plan v1"):
        load_dir(tmp_path)


def test_badly_named_schema_file_is_refused(tmp_path: Path, shipped: Path) -> None:
    shutil.copy(shipped / "plan.v1.avsc", tmp_path / "Plan-v1.avsc")
    with pytest.raises(ConfigError, match="named"):
        load_dir(tmp_path)


def test_same_schema_under_two_names_is_refused(tmp_path: Path, shipped: Path) -> None:
    shutil.copy(shipped / "plan.v1.avsc", tmp_path / "plan.v1.avsc")
    shutil.copy(shipped / "plan.v1.avsc", tmp_path / "plan_copy.v1.avsc")
    with pytest.raises(ConfigError, match="two names"):
        load_dir(tmp_path)


def test_records_stay_records_after_replace(codec: Codec) -> None:
    record = dataclasses.replace(raw_mail(), uid=43)
    assert codec.decode_record(codec.encode_record(record), RawMail).identity.endswith("/43")
