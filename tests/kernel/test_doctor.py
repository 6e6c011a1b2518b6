"""``mailroom doctor`` against the real stack: it must notice what is missing and say so."""

from __future__ import annotations

import argparse

import pytest
from psycopg import sql

from mailroom import kafka, topics
from mailroom.console import doctor
from mailroom.db import connect
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def in_schema(settings: Settings, schema: str) -> Settings:
    return settings.replace(database_url=f"{settings.dsn} options='-c search_path={schema}'")


def levels(findings: list[doctor.Finding], component: str) -> set[str]:
    return {f.level for f in findings if f.component == component}


def test_missing_topics_fail_until_created(isolated_settings: Settings, db_schema: str) -> None:
    settings = in_schema(isolated_settings, db_schema)
    before = doctor.run_checks(settings)
    assert levels(before, "topics") == {"FAIL"}
    assert any(f.fix == "run `mailroom topics create`" for f in before)
    assert levels(before, "migrations") == {"OK"}
    assert levels(before, "mailboxes") == {"WARN"}  # none configured in a fresh schema
    assert doctor.doctor(settings, argparse.Namespace()) == 1

    admin = kafka.make_admin(settings)
    try:
        topics.ensure_topics(admin, topics.topic_specs(settings))
        after = doctor.run_checks(settings)
        assert levels(after, "topics") == {"OK"}
        assert "FAIL" not in {f.level for f in after}
        # One broker with replication factor 1 is a warning, never an OK.
        assert levels(after, "durability") == {"WARN"}
        assert doctor.doctor(settings, argparse.Namespace()) == 0
    finally:
        admin.delete_topics([s.name for s in topics.topic_specs(settings)])
        admin.close()


def test_pending_migrations_fail(base_settings: Settings, unique_name: str) -> None:
    schema = f"empty_{unique_name}"
    with connect(base_settings, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        findings = doctor.run_checks(in_schema(base_settings, schema))
        migrations = [f for f in findings if f.component == "migrations"]
        assert [f.level for f in migrations] == ["FAIL"]
        assert "pending" in migrations[0].detail
        assert migrations[0].fix == "run `mailroom db migrate`"
    finally:
        with connect(base_settings, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_unreachable_kafka_and_database_fail(base_settings: Settings) -> None:
    settings = base_settings.replace(
        kafka_bootstrap="127.0.0.1:1", database_url="host=127.0.0.1 port=1 dbname=x user=x",
        kafka_request_timeout_ms=3000, kafka_session_timeout_ms=1000,
        kafka_heartbeat_interval_ms=300,
    )
    findings = doctor.run_checks(settings)
    assert levels(findings, "kafka") == {"FAIL"}
    assert levels(findings, "postgresql") == {"FAIL"}
