"""``mailroom doctor`` warns where what crosses a network to Kafka or PostgreSQL is not
encrypted with a verified server (pure: no connection is made)."""

from __future__ import annotations

import pytest

from mailroom.console.doctor import check_transport
from mailroom.settings import Settings


def _warned(**changes: str) -> set[str]:
    return {f.component for f in check_transport(Settings(**changes)) if f.level == "WARN"}


def test_the_local_stack_needs_nothing() -> None:
    assert _warned() == set()


@pytest.mark.parametrize("changes", [
    {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "SCRAM-SHA-512"},
    {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"},
    {"kafka_security_protocol": "PLAINTEXT", "kafka_bootstrap": "kafka1.example:9092"},
])
def test_kafka_warnings(changes: dict[str, str]) -> None:
    assert _warned(**changes) == {"kafka-tls"}


@pytest.mark.parametrize("changes", [
    {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
     "kafka_bootstrap": "kafka1.example:9093"},
    {"kafka_security_protocol": "SSL", "kafka_bootstrap": "kafka1.example:9093"},
    {"kafka_security_protocol": "PLAINTEXT", "kafka_bootstrap": "127.0.0.1:9092,[::1]:9092"},
])
def test_kafka_verified_or_local(changes: dict[str, str]) -> None:
    assert _warned(**changes) == set()


@pytest.mark.parametrize("url", [
    "host=db.example dbname=mailroom user=mr",
    "host=db.example dbname=mailroom sslmode=require",
    "postgresql://mr@db.example/mailroom?sslmode=verify-ca",
    "host=127.0.0.1,db.example sslmode=prefer",
])
def test_postgres_without_verify_full_to_a_remote_host(url: str) -> None:
    assert _warned(database_url=url) == {"postgres-tls"}


@pytest.mark.parametrize("url", [
    "host=db.example dbname=mailroom sslmode=verify-full sslrootcert=/etc/ca.pem",
    "postgresql://mr@db.example/mailroom?sslmode=verify-full",
    "host=localhost dbname=mailroom",
    "host=/var/run/postgresql dbname=mailroom",
    "dbname=mailroom",  # no host: the local Unix socket
])
def test_postgres_verified_or_local(url: str) -> None:
    assert _warned(database_url=url) == set()
