"""What the trace costs per event, apart from the rest of the pipeline: each stage's side (the
events gathered with ``Tracer.add`` and the records ``Tracer.send`` makes of them) and persist's
(its batch handler on trace records alone: decode, the erasure check, COPY into
``message_traces``), with the CPU of persist's PostgreSQL backend, in a migrated schema of its
own (dropped afterwards).

The events are those of the bench's mail, four an email (fetched, unwrapped, routed, persisted)
with details shaped like the stages' own. CPU time, not wall time, so a busy machine disturbs it
less than ``bench/e2e.py``; to compare two commits, run this file with ``PYTHONPATH`` set to
each checkout in turn, alternating.

Run: ``.venv/bin/python bench/trace_path.py [--emails N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# Run as a script, this folder would shadow the stage packages (bench/ingest.py, …).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from psycopg import sql  # noqa: E402

from mailroom.codec import Codec  # noqa: E402
from mailroom.db import connect  # noqa: E402
from mailroom.db.migrate import migrate  # noqa: E402
from mailroom.settings import Settings  # noqa: E402
from mailroom.stage.types import Context, Source  # noqa: E402
from mailroom.tracing import Tracer  # noqa: E402
from persist.stage import PersistHandler  # noqa: E402

UNIT = 50  # events a stage's unit gathers before it sends them
POLL = 12  # trace records in one of persist's batches


def emails(n: int) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """Per stage: (key, event, add()'s keyword arguments) of n emails' events."""
    out: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    raw = Source("bench.raw", 1, 7, b"", b"", 0)
    for i in range(n):
        ident, key = f"1/INBOX/1796293610/{i}", f"m{i}.bench@mail.customer{i % 40}.example"
        out.setdefault("ingest", []).append((ident, "fetched", dict(detail={
            "size": "27025", "folder": "INBOX", "mailbox": "crm-forward@bench.example",
            "direction": "incoming", "claim_check": "no"}, raw_identity=ident)))
        out.setdefault("unwrap", []).append((key, "unwrapped", dict(detail={
            "path": "part 2: message/rfc822", "mailbox": "crm-forward@bench.example (forward 1)",
            "original": "1 of 1", "copy_kind": "forwarded_rfc822", "content_hash": "a4c0" * 16,
            "forwarded_by": "u-fwd3 <fwd3@bench.example>", "via_forward_mailbox": "1"},
            source=raw, message_id=key, dedupe_key=key, raw_identity=ident)))
        out.setdefault("route", []).append((key, "routed", dict(detail={
            "steps": "upsert_email_activity, link_party, link_party",
            "00 correlation": "none: ", "01 filter": "accept: user:u-fwd3 (mailbox 1) tracks all",
            "02 autoreply": "person: no auto-reply, bounce or loop marker",
            "03 parties.from": f"unknown: c{i}@customer.example: no record has this address",
            "04 parties.to": "resolved: fwd3@bench.example: user", "accepted_by": "user:u-fwd3"},
            source=raw, message_id=key, dedupe_key=key)))
        out.setdefault("persist", []).append((key, "persisted", dict(detail={
            "activity": str(i), "correlation": "no candidate resolved"},
            source=raw, dedupe_key=key)))
    return out


class Capture:
    """Stands in for the producer: keeps what Tracer.send hands it (no broker is measured)."""

    def __init__(self) -> None:
        self.values: list[tuple[int, bytes, bytes]] = []

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(6))

    def send(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self.values.append((partition, key, value))


def stage_side(settings: Settings, codec: Codec, events: dict[str, list[Any]]
               ) -> tuple[float, list[tuple[int, bytes, bytes]]]:
    """CPU seconds of every stage's Tracer, and the records they made."""
    cpu, records = 0.0, []
    for stage, mine in events.items():
        producer = Capture()
        tracer = Tracer(producer, codec, settings, stage)
        start = time.process_time()
        for n, (key, event, fields) in enumerate(mine, 1):
            tracer.add(key, event, **fields)
            if n % UNIT == 0:
                tracer.send()
        tracer.send()
        cpu += time.process_time() - start
        records += producer.values
    return cpu, records


def backend_cpu(pid: int) -> float:
    """CPU seconds of a PostgreSQL backend on this host (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


class _Commit:
    def __init__(self, conn: Any) -> None:
        self.conn = conn


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    settings = Settings()
    codec = Codec.from_settings(settings)
    events = emails(args.emails)
    count = sum(len(v) for v in events.values())
    schema = "trace_path_" + uuid.uuid4().hex[:8]
    with connect(settings, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    figures: dict[str, list[float]] = {"stage": [], "persist": [], "its PG": []}
    try:
        with connect(settings, schema=schema, autocommit=True) as conn:
            migrate(conn)
        with connect(settings, schema=schema) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            conn.commit()
            handler = PersistHandler(_Commit(conn), codec, settings)  # type: ignore[arg-type]
            topic, offset = settings.topic("trace"), 0
            for _ in range(args.rounds):
                cpu, records = stage_side(settings, codec, events)
                contexts = []
                for partition, key, value in records:
                    offset += 1
                    contexts.append(Context("persist", Source(topic, partition, offset, key,
                                                              value, 0)))
                pg, start = backend_cpu(pid), time.process_time()
                for i in range(0, len(contexts), POLL):
                    with conn.transaction():
                        handler.run_batch(contexts[i:i + POLL])
                figures["persist"].append((time.process_time() - start) / count * 1e6)
                figures["its PG"].append((backend_cpu(pid) - pg) / count * 1e6)
                figures["stage"].append(cpu / count * 1e6)
            stored = conn.execute("SELECT count(*) FROM message_traces").fetchone()
            assert stored == (args.rounds * count,), stored
    finally:
        with connect(settings, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    print(f"trace path, {count} events ({args.emails} emails) x {args.rounds} rounds, "
          "CPU µs per event (each round):")
    for name, values in figures.items():
        print(f"  {name:8} {' '.join(f'{v:5.1f}' for v in values)}   min {min(values):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
