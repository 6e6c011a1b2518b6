"""Named fault points kill the process at the named instant, and only there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from mailroom import faults
from mailroom.settings import Settings

PROGRAM = """
import sys
from mailroom import faults
from mailroom.settings import load
settings = load()
for i in range(1, 4):
    print(f"before {i}", flush=True)
    faults.point(settings, "test:here")
    print(f"after {i}", flush=True)
print("finished", flush=True)
"""


def run(armed: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILROOM_FAULT_POINTS": armed}
    return subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                          text=True, timeout=60)


def test_armed_point_kills_at_the_named_arrival() -> None:
    result = run("test:here@2")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["before", "1", "after", "1", "before", "2"]


def test_unarmed_point_does_nothing() -> None:
    result = run("other:point")
    assert result.returncode == 0 and result.stdout.strip().endswith("finished")


def test_unregistered_point_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="not registered"):
        faults.point(Settings(fault_points="x:y"), "typo:point")


def test_armed_parses_counts() -> None:
    assert faults.armed(Settings(fault_points="a:b, c:d@3")) == {"a:b": 1, "c:d": 3}
