"""Kafka and PostgreSQL of the local stack, and the ``mailroom stack`` command itself."""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from kafka import KafkaAdminClient

from mailroom import cli
from mailroom.console.stack import kafka
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def test_kafka_admin_lists_topics(stack: Settings) -> None:
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers, request_timeout_ms=10_000)
    try:
        assert isinstance(admin.list_topics(), list)
        (broker,) = admin.describe_cluster()["brokers"]
        assert broker["port"] == stack.kafka_port
    finally:
        admin.close()


def test_postgres_select_one(stack: Settings) -> None:
    with psycopg.connect(stack.dsn, connect_timeout=10) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        role = conn.execute(
            "select rolcreaterole, rolcreatedb from pg_roles where rolname = current_user"
        ).fetchone()
        assert role == (True, True)
        assert int(conn.execute("show max_connections").fetchone()[0]) >= 200


def test_stack_status_and_up_are_idempotent(stack: Settings, capsys) -> None:
    assert cli.main(["stack", "status"]) == 0
    assert cli.main(["stack", "up"]) == 0  # everything already runs: nothing restarted
    out = capsys.readouterr().out
    assert out.count("already running") == 3


def test_official_kafka_topics_tool(stack: Settings) -> None:
    result = subprocess.run(
        [str(kafka.REPO / "deploy" / "kafka" / "kafka-tool"), "kafka-topics",
         "--bootstrap-server", stack.bootstrap_servers[0], "--list"],
        capture_output=True, text=True, timeout=120, cwd=kafka.REPO,
        env={"PATH": "/usr/bin:/bin", "MAILROOM_STATE_DIR": str(stack.state_path)},
    )
    assert result.returncode == 0, result.stderr
