"""One way to measure persist, shared by ``bench/persist.py`` and ``bench/feed.py``.

N plans applied by :func:`persist.batch.apply_batch` in batches of 500, one transaction each,
into a fresh scratch schema (migrated, the tests' reference records loaded, the change feed's
outbox triggers on or off, optionally without some migrations — the schema as an earlier
release left it), timed by the wall clock and by the CPU of this process and of its
PostgreSQL backend — CPU per plan holds still on a busy machine, where the rate does not.
The caller drops the schema (``bench/feed.py`` publishes its outbox first).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import psutil
from persistbuild import email, make_plan
from pipeline_testing import REFERENCE_SQL

from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.db.migrate import default_directory, migrate
from mailroom.settings import Settings
from persist.batch import Item, apply_batch

BATCH = 500


@dataclass(frozen=True)
class PersistRun:
    schema: str
    plans: int
    seconds: float
    client_cpu_s: float  # this process: persist's own work
    server_cpu_s: float  # its PostgreSQL backend

    @property
    def plans_per_s(self) -> float:
        return self.plans / self.seconds

    @property
    def client_ms_per_plan(self) -> float:
        return self.client_cpu_s / self.plans * 1000

    @property
    def server_ms_per_plan(self) -> float:
        return self.server_cpu_s / self.plans * 1000


def build_items(codec: Codec, n: int) -> list[Item]:
    """N plans of distinct emails (a case and a queue item each), encoded as read from the topic."""
    plans = [make_plan(codec, email(message_id=f"b{i}@customer.example", subject=f"Issue {i}",
                                    body="x" * 2000)) for i in range(n)]
    return [Item(p, codec.encode_record(p), i) for i, p in enumerate(plans)]


def disable_outbox(conn) -> None:  # type: ignore[no-untyped-def]
    """Switch the change feed's outbox triggers (migrations 0063, 0072) off, in this schema only."""
    for table, trigger in conn.execute(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace "
            "AND t.tgname ~ '_feed_(insert|update|delete)$'").fetchall():
        conn.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER "{trigger}"')


def migrate_without(conn, without: Collection[int]) -> None:  # type: ignore[no-untyped-def]
    """Migrate, leaving out the migrations numbered ``without`` (all of them when empty)."""
    if not without:
        migrate(conn)
        return
    with tempfile.TemporaryDirectory() as folder:
        for path in default_directory().glob("*.sql"):
            if int(path.name[:4]) not in without:
                (Path(folder) / path.name).write_bytes(path.read_bytes())
        migrate(conn, Path(folder))


def persist_run(base: Settings, codec: Codec, items: list[Item], *, outbox: bool,
                prefix: str = "bench_", without: Collection[int] = ()) -> PersistRun:
    """Apply ``items`` into a new scratch schema named ``prefix`` + a random suffix, migrated
    without the migrations numbered ``without``."""
    schema = prefix + uuid.uuid4().hex[:8]
    with connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        with connect(base, schema=schema) as conn:
            migrate_without(conn, without)
            conn.execute(REFERENCE_SQL)
            if not outbox:
                disable_outbox(conn)
            conn.commit()
            backend = psutil.Process(conn.info.backend_pid)
            server, client = _cpu(backend), time.process_time()
            start = time.perf_counter()
            for i in range(0, len(items), BATCH):
                with conn.transaction():
                    apply_batch(conn, codec, items[i:i + BATCH])
            took = time.perf_counter() - start
            server, client = _cpu(backend) - server, time.process_time() - client
    except BaseException:
        drop_schemas(base, [schema])
        raise
    return PersistRun(schema, len(items), took, client, server)


def drop_schemas(base: Settings, schemas: list[str]) -> None:
    with connect(base, autocommit=True) as admin:
        for schema in schemas:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system
