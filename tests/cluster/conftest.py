"""The three-broker Kafka cluster (``mailroom stack cluster``) for the tests in this folder.

The cluster runs beside the stack's single broker, which every other test uses; it is started
here when it does not run yet and stopped again at the end of the session (a cluster that was
already running is left running). The chaos suite's helpers (``tests/chaos/chaoslib``) lay the
mail, run the stages and count.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.console.stack import cluster, kafka
from mailroom.console.stack.process import StackError
from mailroom.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))

BROKERS = 3


@pytest.fixture(scope="session")
def kafka_cluster(base_settings: Settings) -> Iterator[Settings]:
    """Settings pointed at a running three-broker cluster (its bootstrap servers, replication
    factor 3); everything else — PostgreSQL, Dovecot, the state folder — is the stack's."""
    if shutil.which("java") is None or not kafka.libs(base_settings).is_dir():
        pytest.skip("no Java or no Kafka jars yet: `mailroom stack up` resolves them")
    was_running = (cluster.formed(base_settings) == BROKERS
                   and all(n.running for n in cluster.status(base_settings)))
    try:
        cluster.up(base_settings, BROKERS)
    except StackError as exc:
        pytest.fail(f"the three-broker cluster did not start: {exc}")
    try:
        yield cluster.client_settings(base_settings, BROKERS)
    finally:
        if not was_running:
            cluster.down(base_settings)
