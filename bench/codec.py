"""Encode + decode round trips per second of a 30 KB RawMail: ``avro`` against ``fastavro``.

Run: ``.venv/bin/python bench/codec.py [seconds-per-library]``. Both paths write the same single
object encoding (marker, fingerprint, payload), so the figures compare like with like; the
codec uses fastavro for the per-message path because of this measurement.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import avro.io

from mailroom.codec import HEADER_BYTES, MARKER, Codec
from mailroom.records import RawMail
from mailroom.schemas import shipped_schemas_dir


def sample() -> RawMail:
    content = os.urandom(15_000) + b"x" * 15_000
    return RawMail(
        mailbox_id="mbx-1", mailbox_address="forward@example.com", owner_kind="forward",
        folder="INBOX", direction="incoming", protocol="imap", uidvalidity=1, uid=42,
        server_date=datetime.now(UTC), fetched_at=datetime.now(UTC), size=len(content),
        content=content,
    )


def rate(round_trip: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            round_trip()
        count += 100
    return count / elapsed


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    schemas_dir = shipped_schemas_dir()
    assert schemas_dir is not None, "run from a checkout"
    codec = Codec.load(schemas_dir)
    version = codec.newest("raw_mail")
    datum = sample().to_avro()

    schema = version.avro_schema()
    writer, reader = avro.io.DatumWriter(schema), avro.io.DatumReader(schema, schema)

    def with_avro() -> object:
        buf = io.BytesIO()
        buf.write(MARKER + version.fingerprint)
        writer.write(datum, avro.io.BinaryEncoder(buf))
        buf.seek(HEADER_BYTES)
        return reader.read(avro.io.BinaryDecoder(buf))

    def with_fastavro() -> object:
        return codec.decode(codec.encode("raw_mail", datum))

    assert with_avro() == with_fastavro()[1]  # type: ignore[index]
    slow, fast = rate(with_avro, seconds), rate(with_fastavro, seconds)
    print(f"30 KB RawMail round trips/s: avro {slow:,.0f}  fastavro {fast:,.0f}"
          f"  ({fast / slow:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
