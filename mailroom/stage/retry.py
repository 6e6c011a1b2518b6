"""The one retry schedule of the stream stages: a transient failure is tried again with a
doubling backoff (``stage_retry_backoff_ms``, at most :data:`MAX_BACKOFF_S`) until
``stage_retry_deadline_ms``, then given up (the runner dead-letters ``retry_exhausted``).

Used for a record whose handler raised TransientError and, alike, for a unit whose commit
strategy's transaction failed transiently (persist: a deadlock or serialization failure rolls
the whole batch back). SIGTERM ends the waiting at once: retries may outlast a termination grace
period, and the record simply comes again to whoever owns the partition next.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal, Protocol

from mailroom.settings import Settings
from mailroom.stage.types import RETRY_EXHAUSTED, Source, Verdict

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0

Next = Literal["again", "exhausted", "stopping"]


class RetryStatus(Protocol):
    stopping: bool
    retried: int


def sleep_unless_stopping(status: RetryStatus, seconds: float) -> bool:
    """Sleep (heartbeats go on in their thread); False as soon as a stop is asked for."""
    until = time.monotonic() + seconds
    while not status.stopping:
        left = until - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.2))
    return False


class Retries:
    """The retries of one failing record or unit, from its first failure on."""

    def __init__(self, settings: Settings, status: RetryStatus) -> None:
        self.deadline_ms = settings.stage_retry_deadline_ms
        self.give_up = time.monotonic() + self.deadline_ms / 1000
        self.backoff_s = settings.stage_retry_backoff_ms / 1000
        self.status = status
        self.tries = 1  # the try that just failed, or is about to be made

    def after_failure(self, what: str, reason: str) -> Next:
        """A try of ``what`` failed transiently: wait and say ``again``, or say ``exhausted``
        (the deadline would pass) or ``stopping`` (SIGTERM came while waiting)."""
        self.status.retried += 1
        if time.monotonic() + self.backoff_s > self.give_up:
            return "exhausted"
        log.warning("transient failure on %s (try %d): %s; retrying in %.1f s",
                    what, self.tries, reason, self.backoff_s)
        if not sleep_unless_stopping(self.status, self.backoff_s):
            log.info("stopping: %s is left for the next owner", what)
            return "stopping"
        self.backoff_s = min(self.backoff_s * 2, MAX_BACKOFF_S)
        self.tries += 1
        return "again"

    def exhausted(self, reason: str) -> str:
        """The dead letter's reason once the deadline has passed."""
        return (f"still failing after {self.tries} tries over {self.deadline_ms} ms: {reason}")


def verdict_with_retries(
    run: Callable[[int], Verdict], source: Source, first: Verdict | None, settings: Settings,
    status: RetryStatus,
) -> Verdict | None:
    """A record's verdict: ``run(try number)`` again while it answers ``retry``, until the
    deadline (then a ``retry_exhausted`` dead verdict); ``first``: the verdict of a first try
    already made (in a batch). None when SIGTERM came while retrying: the record is left
    uncommitted for whoever takes the partition next."""
    retries = Retries(settings, status)
    while True:
        verdict = first or run(retries.tries)
        first = None
        if verdict.kind != "retry":
            return verdict
        step = retries.after_failure(source.coordinates(), verdict.reason)
        if step == "exhausted":
            return Verdict("dead", reason_code=RETRY_EXHAUSTED,
                           reason=retries.exhausted(verdict.reason))
        if step == "stopping":
            return None
