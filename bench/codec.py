"""Codec speed: a 30 KB RawMail's round trip with ``avro`` against ``fastavro``, then the typed
records' mapping (dataclass ↔ Avro datum) and whole codec round trips of a 27 KB Email and a
Plan, the records every stage decodes and encodes per email.

Run: ``.venv/bin/python bench/codec.py [seconds-per-measurement]``. Each path writes the same
bytes, so the figures compare like with like. fastavro was chosen over ``avro`` because of this
measurement; the codec now writes (and reads its own version) with code compiled per schema
(``mailroom.avrobinary``), and the fastavro rows below are what it does instead.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import avro.io
import fastavro

from mailroom.codec import HEADER_BYTES, MARKER, Codec
from mailroom.records import Email, Plan, RawMail
from mailroom.records.action import Candidate, Condition, Decision, Step
from mailroom.records.email import Address, Attachment, Delivery, Markers, Report
from mailroom.schemas import shipped_schemas_dir


def sample() -> RawMail:
    content = os.urandom(15_000) + b"x" * 15_000
    return RawMail(
        mailbox_id="mbx-1", mailbox_address="forward@example.com", owner_kind="forward",
        folder="INBOX", direction="incoming", protocol="imap", uidvalidity=1, uid=42,
        server_date=datetime.now(UTC), fetched_at=datetime.now(UTC), size=len(content),
        content=content,
    )


def sample_email() -> Email:
    """A 27 KB forwarded email: text and HTML bodies, a small inline attachment, a thread."""
    people = [Address(f"Person {i}", f"person{i}@example.com") for i in range(6)]
    return Email(
        dedupe_key="abc.123@example.com", content_hash="ab" * 32, subject="Re: the order",
        direction="incoming", message_id="abc.123@example.com", in_reply_to="p.1@example.com",
        references=tuple(f"p.{i}@example.com" for i in range(4)), from_address=people[0],
        sender=people[0], to=tuple(people[1:3]), cc=tuple(people[3:]),
        date=datetime.now(UTC), markers=Markers(list_id="<orders.example.com>"),
        report=Report(), text_body="Hello, this is a line of the body.\n" * 300,
        html_body="<p>Hello, this is a line of the body.</p>\n" * 300,
        attachments=(Attachment("logo.png", "image/png", 2_000, "cd" * 32,
                                content=b"\x89PNG" * 500, content_id="logo", inline=True),),
        delivery=Delivery("mbx-1", "forward@example.com", "forward", None, "INBOX",
                          "forwarded_rfc822", "mbx-1/INBOX/1/42", ("part 2: message/rfc822",),
                          forwarded_by_user="u-1", source_topic="mailroom.raw",
                          source_partition=0, source_offset=42),
        warnings=("one warning",),
    )


def sample_plan(email: bytes) -> Plan:
    return Plan(
        dedupe_key="abc.123@example.com", content_hash="ab" * 32, email=email,
        receiving_mailbox="mbx-1", accepting_owner="queue:q-1", message_id="abc.123@example.com",
        correlation=[Candidate("in_reply_to", "p.1@example.com"),
                     Candidate("references", "p.0@example.com")],
        steps=[
            Step("upsert_email_activity", "abc.123@example.com", None,
                 {"receiving_mailbox": "mbx-1", "accepting_owner": "queue:q-1",
                  "direction": "incoming", "copy_kind": "forwarded_rfc822",
                  "sent_at": "2026-12-02T10:00:00.000Z", "sender": "person0@example.com",
                  "participants": "person0@example.com,person1@example.com"}),
            Step("link_party", "abc.123@example.com|from|person0@example.com", None,
                 {"role": "from", "address": "person0@example.com", "name": "Person 0",
                  "record": "contact:c-1", "outcome": "resolved", "detail": "one match"}),
            Step("set_regarding", "abc.123@example.com",
                 Condition("correlates", otherwise="no candidate thread is tracked")),
            Step("create_queue_item", "queue_item|q-1|abc.123@example.com", None,
                 {"queue": "q-1", "rule_item": "q-1#1"}),
        ],
        decisions=[Decision("filter", "accept", "queue:q-1 tracks everything")],
    )


def rate(round_trip: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            round_trip()
        count += 100
    return count / elapsed


def cpu_us(call: Callable[[], object], seconds: float) -> float:
    """CPU µs per call, best of batches: on a shared machine wall time measures the neighbours."""
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.thread_time()
        for _ in range(500):
            call()
        best = min(best, (time.thread_time() - start) / 500 * 1e6)
    return best


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
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, version.parsed, datum)
        buf.seek(0)
        return fastavro.schemaless_reader(buf, version.parsed, None)

    def with_codec() -> object:
        return codec.decode(codec.encode("raw_mail", datum))[1]

    assert with_avro() == with_fastavro() == with_codec()
    slow, fast, ours = (rate(f, seconds) for f in (with_avro, with_fastavro, with_codec))
    print(f"30 KB RawMail round trips/s: avro {slow:,.0f}  fastavro {fast:,.0f}"
          f"  ({fast / slow:.1f}x)  the codec {ours:,.0f} ({ours / fast:.1f}x fastavro)")

    email = sample_email()
    encoded = codec.encode_record(email)
    plan = sample_plan(encoded)
    plan_bytes = codec.encode_record(plan)
    print(f"Email {len(encoded):,} bytes, Plan {len(plan_bytes):,} bytes (CPU µs per call)")
    email_datum, plan_datum = email.to_avro(), plan.to_avro()
    email_schema, plan_schema = codec.newest("email").parsed, codec.newest("plan").parsed
    for label, call in (
        ("fastavro write (Email)",
         lambda: fastavro.schemaless_writer(io.BytesIO(), email_schema, email_datum)),
        ("fastavro read (Email)",
         lambda: fastavro.schemaless_reader(io.BytesIO(encoded[HEADER_BYTES:]), email_schema,
                                            None)),
        ("fastavro write (Plan)",
         lambda: fastavro.schemaless_writer(io.BytesIO(), plan_schema, plan_datum)),
        ("fastavro read (Plan)",
         lambda: fastavro.schemaless_reader(io.BytesIO(plan_bytes[HEADER_BYTES:]), plan_schema,
                                            None)),
        ("Email.to_avro", email.to_avro),
        ("Email.from_avro", lambda: Email.from_avro(email_datum)),
        ("codec.encode_record(Email)", lambda: codec.encode_record(email)),
        ("codec.decode_record(Email)", lambda: codec.decode_record(encoded, Email)),
        ("Plan.to_avro", plan.to_avro),
        ("Plan.from_avro", lambda: Plan.from_avro(plan_datum)),
        ("codec.encode_record(Plan)", lambda: codec.encode_record(plan)),
        ("codec.decode_record(Plan)", lambda: codec.decode_record(plan_bytes, Plan)),
    ):
        print(f"  {label:<28} {cpu_us(call, seconds):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
