"""Named fault points: die at a chosen instant, on purpose, so crash tests need no timing.

A stage marks the instants where a crash matters, e.g.::

    faults.point(settings, "ingest:after_publish")

Setting ``MAILROOM_FAULT_POINTS=ingest:after_publish`` (comma-separated for several) makes the
process kill itself with SIGKILL the first time it reaches that point — exactly what ``kill -9``
at that instant would do: no ``finally`` blocks, no flushes, no goodbye to the consumer group.
The name may carry a count, ``ingest:after_publish@3``, to die at the third arrival instead.
Unarmed points cost one set lookup.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections import Counter

from mailroom.settings import Settings

log = logging.getLogger(__name__)

#: Every fault point the code base defines, with what a crash there tests. Arming a name that is
#: not listed here is a configuration error (a typo would otherwise silently test nothing).
KNOWN: dict[str, str] = {
    "test:here": "used by the kernel's own test of this switch",
}

_arrivals: Counter[str] = Counter()


def register(name: str, meaning: str) -> str:
    """Declare a fault point (module level, next to the code that uses it). Returns the name."""
    KNOWN[name] = meaning
    return name


def armed(settings: Settings) -> dict[str, int]:
    """The armed points and the arrival at which each fires (1 = the first)."""
    result: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in settings.fault_points.split(","))):
        name, _, nth = item.partition("@")
        result[name] = int(nth) if nth else 1
    return result


def point(settings: Settings, name: str) -> None:
    """Die here with SIGKILL if ``name`` is armed (and this is the armed arrival)."""
    if not settings.fault_points:
        return
    if name not in KNOWN:
        raise ValueError(f"fault point {name!r} is not registered in mailroom.faults")
    nth = armed(settings).get(name)
    if nth is None:
        return
    _arrivals[name] += 1
    if _arrivals[name] == nth:
        log.warning("fault point %s reached: killing this process (SIGKILL)", name)
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
