"""What the integration tests of the pipeline's stages share: their own schema and topics, the
real broker (produce, read back, wait), and stages started as ``mailroom run STAGE``.

Importable from every test folder as ``import pipeline_testing`` (``tests/`` is on
``sys.path`` because the root conftest lives there). Each test still says what it overrides —
partitions, timeouts, claim-check sizes — by passing it in.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from mailroom import kafka
from mailroom.db import connect
from mailroom.db.migrate import migrate
from mailroom.settings import Settings, env_name
from mailroom.topics import ensure_topics, topic_specs

REPO = Path(__file__).resolve().parents[1]

# The reference records (users, queues, a customer account and contact) persist's and route's
# integration tests load into their schema.
REFERENCE_SQL = """
INSERT INTO users (id, full_name) VALUES ('alice', 'Alice A'), ('bob', 'Bob B');
INSERT INTO queues (id, name) VALUES ('support', 'Support'), ('sales', 'Sales');
INSERT INTO accounts (id, name, owner_id) VALUES ('a-customer', 'Customer Ltd', 'alice');
INSERT INTO contacts (id, first_name, last_name, account_id, owner_id)
    VALUES ('c-ann', 'Ann', 'Example', 'a-customer', 'alice');
INSERT INTO email_addresses (record_kind, record_id, address, is_primary) VALUES
    ('user', 'alice', 'alice@acme.example', true), ('user', 'bob', 'bob@acme.example', true),
    ('queue', 'support', 'support@acme.example', true),
    ('queue', 'sales', 'sales@acme.example', true),
    ('contact', 'c-ann', 'ann@customer.example', true);
"""


# --- own schema, own topics --------------------------------------------------------------------


@contextmanager
def own_schema(
    isolated: Settings, schema: str, *,
    prepare: Callable[[psycopg.Connection], Any] | None = None, **overrides: Any,
) -> Iterator[Settings]:
    """``isolated`` with its own migrated PostgreSQL schema (dropped afterwards) and the
    ``overrides``; ``prepare`` loads the test's data into it (committed). Skips the test when
    the local stack's PostgreSQL is not reachable."""
    try:
        connect(isolated).close()
    except Exception:  # noqa: BLE001 - any failure means: no local stack here
        pytest.skip("PostgreSQL of the local stack is not reachable (mailroom stack up)")
    with connect(isolated, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        settings = isolated.replace(
            # In the DSN, so subprocesses given MAILROOM_DATABASE_URL use the schema too.
            database_url=f"{isolated.dsn} options='-csearch_path={schema}'", **overrides,
        )
        with connect(settings) as conn:
            migrate(conn)
            if prepare is not None:
                prepare(conn)
        yield settings
    finally:
        with connect(isolated, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def own_topics(settings: Settings, partitions: Mapping[str, int] | None = None) -> Iterator[None]:
    """The settings' topics, deleted afterwards: every role as `mailroom topics create` makes
    them, or only the roles in ``partitions`` (role → partition count, replication 1)."""
    admin = kafka.make_admin(settings)
    try:
        if partitions is None:
            names = [s.name for s in topic_specs(settings)]
            ensure_topics(admin, topic_specs(settings))
        else:
            names = [settings.topic(role) for role in partitions]
            admin.create_topics([NewTopic(settings.topic(role), n, 1)
                                 for role, n in partitions.items()])
        yield
    finally:
        admin.delete_topics(names)
        admin.close()


def drop_schema_and_topics(base: Settings, schema: str, topic_prefix: str) -> None:
    """Remove what a run under its own schema and topic prefix left (stages made the topics)."""
    with connect(base, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    delete_topics_under(base, topic_prefix)


def delete_topics_under(settings: Settings, topic_prefix: str) -> None:
    """Delete every topic named ``<topic_prefix>.…`` on the settings' brokers."""
    client = kafka.make_admin(settings)
    try:
        ours = [t for t in client.list_topics() if t.startswith(f"{topic_prefix}.")]
        if ours:
            client.delete_topics(ours)
    finally:
        client.close()


# --- the broker --------------------------------------------------------------------------------


def produce(settings: Settings, topic: str, items: Iterable[tuple[bytes, bytes]],
            partition: int | None = None, timestamp_ms: int | None = None) -> None:
    """(key, value) records to ``topic`` (its full name), flushed."""
    producer = kafka.make_producer(settings)
    try:
        for key, value in items:
            producer.send(topic, key=key, value=value, partition=partition,
                          timestamp_ms=timestamp_ms)
        producer.flush()
    finally:
        producer.close()


def read_all(settings: Settings, role: str, timeout: float = 10.0) -> list[Any]:
    """Every record now in the topic of ``role`` (all partitions), read without a group."""
    config = kafka.consumer_config(settings, "unused")
    config["group_id"] = None
    consumer = KafkaConsumer(**config)
    try:
        topic = settings.topic(role)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def read_events(settings: Settings, timeout: float = 10.0) -> list[Any]:
    """Every trace event now on the trace topic: the events of each record (a record carries a
    stage's batch of them), in topic order."""
    from mailroom.codec import Codec
    from mailroom.tracing import events_of

    codec = Codec.from_settings(settings)
    return [e for r in read_all(settings, "trace", timeout) for e in events_of(codec, r.value)]


def wait_for(what: Callable[[], Any], timeout: float = 30.0, every: float = 0.3) -> Any:
    """``what()``'s first true result, asked every ``every`` seconds; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := what()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)
    return result


# --- stages as processes -----------------------------------------------------------------------


def stage_env(settings: Settings, fields: Iterable[str], **extra: str) -> dict[str, str]:
    """This environment with the ``MAILROOM_*`` variable of each named setting, then ``extra``
    (variable names as they are)."""
    env = {**os.environ, **{env_name(f): str(getattr(settings, f)) for f in fields}}
    env.update(extra)
    return env


def start_stage(settings: Settings, stage: str, fields: Iterable[str], *,
                stderr: int | None = None, **extra: str) -> subprocess.Popen[bytes]:
    """``mailroom run STAGE`` with the named settings (see :func:`stage_env`)."""
    mailroom = Path(sys.executable).with_name("mailroom")
    return subprocess.Popen([str(mailroom), "run", stage], env=stage_env(settings, fields, **extra),
                            cwd=REPO, stderr=stderr)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=timeout) == 0, "SIGTERM: finish, commit, leave, exit 0"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now (for a process's metrics)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a GET on 127.0.0.1; (0, "") when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""
