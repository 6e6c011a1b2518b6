"""Topic values as Avro single-object encoding: ``C3 01``, 8-byte schema fingerprint, payload.

The fingerprint names the writer's schema; :meth:`Codec.decode` looks it up among every version
in ``schemas/`` and reads the payload into the newest version of the same name (Avro schema
resolution), so a stage reads records of older writers as its own version. Two failures stay
distinct because a stage treats them differently:

* an unknown fingerprint raises :class:`~mailroom.errors.UnknownSchemaError` — the writer is
  newer than this process; the stage pauses, the record is not poison;
* bytes that are not a readable record raise :class:`~mailroom.errors.MalformedRecordError` —
  poison; the stage dead-letters it and moves on.

Each schema's newest version is written, and read when the writer used it too, by code compiled
for that schema (:mod:`mailroom.avrobinary`: the same bytes as fastavro, 3–4x faster to write
an Email); fastavro reads older writers' versions (schema resolution), and any schema the
compiler does not take. fastavro itself is about 6x faster than ``avro`` here (``bench/codec.py``).
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from mailroom import schemas
from mailroom.avrobinary import Reader, Unsupported, Writer, compile_schema
from mailroom.errors import MalformedRecordError, UnknownSchemaError
from mailroom.records import RECORD_TYPES
from mailroom.records.base import AvroRecord, R
from mailroom.settings import Settings

MARKER = b"\xc3\x01"
HEADER_BYTES = len(MARKER) + 8


@dataclass(frozen=True)
class _Reading:
    name: str
    writer: Any
    reader: Any | None  # None: the writer is the newest version, no resolution needed
    compiled: Reader | None = None  # the newest version's compiled reader (see avrobinary)


#: What a record the stage built but its schema refuses raises while being written.
_UNWRITABLE = (ValueError, TypeError, AttributeError, KeyError, OverflowError, struct.error)


class Codec:
    def __init__(self, versions: Mapping[str, list[schemas.SchemaVersion]]) -> None:
        self.versions = dict(versions)
        self._newest = {name: vs[-1] for name, vs in self.versions.items()}
        self._readings: dict[bytes, _Reading] = {}
        self._writers: dict[str, Writer] = {}
        for name, vs in self.versions.items():
            newest = vs[-1]
            compiled: Reader | None = None
            with contextlib.suppress(Unsupported):  # else fastavro writes and reads it
                self._writers[name], compiled = compile_schema(newest.source)
            for v in vs:
                if v.fingerprint == newest.fingerprint:
                    self._readings[v.fingerprint] = _Reading(name, v.parsed, None, compiled)
                else:
                    self._readings[v.fingerprint] = _Reading(name, v.parsed, newest.parsed)

    @classmethod
    def load(cls, directory: Path | str) -> Codec:
        return cls(schemas.load_dir(directory))

    @classmethod
    def from_settings(cls, settings: Settings) -> Codec:
        return cls.load(schemas.schemas_dir(settings))

    @property
    def names(self) -> list[str]:
        return sorted(self.versions)

    def newest(self, name: str) -> schemas.SchemaVersion:
        try:
            return self._newest[name]
        except KeyError:
            raise KeyError(f"no schema named {name!r} in schemas/ (have {self.names})") from None

    # --- dicts ---------------------------------------------------------------------------------
    def encode(self, schema_name: str, datum: Mapping[str, Any]) -> bytes:
        """``datum`` written with the newest version of ``schema_name``."""
        schema = self.newest(schema_name)
        writer = self._writers.get(schema_name)
        try:
            if writer is not None:
                out = bytearray(MARKER)
                out += schema.fingerprint
                writer(datum, out)
                return bytes(out)
            buf = io.BytesIO()
            buf.write(MARKER)
            buf.write(schema.fingerprint)
            fastavro.schemaless_writer(buf, schema.parsed, datum)
            return buf.getvalue()
        except _UNWRITABLE as exc:
            # The stage built a record its own schema refuses: the input that led here is
            # dead-lettered with this reason rather than retried forever.
            raise MalformedRecordError(f"cannot encode as {schema.label}: {exc}") from exc

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """(schema name, datum in the newest version of that name) of one topic value."""
        reading = self._readings.get(writer_fingerprint(data))
        if reading is None:
            raise UnknownSchemaError(bytes(data[2:HEADER_BYTES]))
        if reading.compiled is not None:
            return reading.name, self._read_compiled(reading, data)
        buf = io.BytesIO(data)
        buf.seek(HEADER_BYTES)
        try:
            datum = fastavro.schemaless_reader(buf, reading.writer, reading.reader)
        except Exception as exc:  # noqa: BLE001 - any failure on these bytes means poison
            raise MalformedRecordError(
                f"{reading.name} record unreadable: {type(exc).__name__}: {exc}"
            ) from exc
        if buf.tell() != len(data):
            raise MalformedRecordError(
                f"{reading.name} record has {len(data) - buf.tell()} trailing bytes"
            )
        return reading.name, datum

    @staticmethod
    def _read_compiled(reading: _Reading, data: bytes) -> dict[str, Any]:
        if type(data) is not bytes:
            data = bytes(data)  # slices of it become the record's bytes fields
        try:
            datum, end = reading.compiled(data, HEADER_BYTES)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - any failure on these bytes means poison
            raise MalformedRecordError(
                f"{reading.name} record unreadable: {type(exc).__name__}: {exc}"
            ) from exc
        if end != len(data):
            raise MalformedRecordError(
                f"{reading.name} record has {len(data) - end} trailing bytes")
        return datum

    # --- typed records -------------------------------------------------------------------------
    def encode_record(self, record: AvroRecord) -> bytes:
        return self.encode(record.SCHEMA, record.to_avro())

    def decode_record(self, data: bytes, cls: type[R]) -> R:
        """The value as a ``cls``; a value of another schema is poison for this topic."""
        name, datum = self.decode(data)
        if name != cls.SCHEMA:
            raise MalformedRecordError(f"expected a {cls.SCHEMA} record, got {name}")
        return _build(cls, datum)

    def decode_any(self, data: bytes) -> AvroRecord:
        """The value as whichever record type its schema names (for generic tools)."""
        name, datum = self.decode(data)
        cls = RECORD_TYPES.get(name)
        if cls is None:
            raise MalformedRecordError(f"no record type for schema {name!r}")
        return _build(cls, datum)


def _build(cls: type[R], datum: dict[str, Any]) -> R:
    try:
        return cls.from_avro(datum)
    except (TypeError, ValueError) as exc:
        # Readable Avro, but not a valid record (e.g. both content and blob_ref set).
        raise MalformedRecordError(f"invalid {cls.SCHEMA} record: {exc}") from exc


def writer_fingerprint(data: bytes) -> bytes:
    """The 8 fingerprint bytes of a single-object encoded value; poison if there is no header."""
    if len(data) < HEADER_BYTES or data[:2] != MARKER:
        raise MalformedRecordError(
            f"not an Avro single-object record (starts {bytes(data[:HEADER_BYTES]).hex()!r})"
        )
    return bytes(data[2:HEADER_BYTES])
