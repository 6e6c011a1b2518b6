"""A stream stage or persist started while PostgreSQL is away waits for it instead of exiting
(a supervisor restarting it during a database restart would otherwise see it die)."""

from __future__ import annotations

import subprocess
import time

import pytest
from pipeline_testing import free_port, start_stage

from mailroom.settings import Settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stage", ["route", "persist"])
def test_a_stage_started_without_its_database_waits(isolated_settings: Settings,
                                                     stage: str) -> None:
    # Nothing listens on this port: the database is "away" for the whole test.
    away = isolated_settings.replace(
        database_url=f"host=127.0.0.1 port={free_port()} dbname=mailroom user=mailroom "
        "connect_timeout=2")
    proc = start_stage(away, stage, ("topic_prefix", "database_url"), stderr=subprocess.PIPE)
    try:
        time.sleep(8)  # several connection attempts: without the wait it exits at the first
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert "PostgreSQL" in err.decode()  # it says what it waits for
