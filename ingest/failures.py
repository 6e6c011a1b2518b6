"""What a failed pass does to its mailbox: the failure policy of :mod:`ingest.errors` applied.

Permanent (authentication refused, folder missing, token refused) → ``disabled`` with the
cause, never logged in to again until an administrator enables it. Transient (unreachable,
TLS, busy, protocol) → ``retrying`` with exponential backoff and full jitter; after
``ingest_disable_after_failures`` in a row → ``disabled`` as an outage, re-enabled by the
login-free probe (:mod:`ingest.revive`).
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

import psycopg

from ingest import store
from ingest.errors import classify
from ingest.metrics import IngestMetrics
from ingest.model import Mailbox
from mailroom.errors import PermanentError
from mailroom.settings import Settings

log = logging.getLogger(__name__)


def backoff_s(settings: Settings, failures: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, capped (failures counts from 1)."""
    base, cap = settings.ingest_backoff_base_ms / 1000, settings.ingest_backoff_max_ms / 1000
    ceiling = min(cap, base * 2 ** max(0, failures - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def record(settings: Settings, conn: psycopg.Connection, metrics: IngestMetrics,
           mailbox: Mailbox, exc: Exception, host: str, port: int) -> float | None:
    """Record a failed pass by its cause and commit. Returns the seconds until the mailbox may
    be polled again (None: it is disabled, not polled at all)."""
    assert mailbox.id is not None
    err = classify(exc, host, port)
    if err is not exc:  # the traceback of a raw exception, for whoever debugs it
        log.debug("mailbox=%s %s", mailbox.address, type(exc).__name__, exc_info=exc)
    if isinstance(err, PermanentError):
        metrics.failed("permanent", err)
        log.error("mailbox=%s disabled: %s", mailbox.address, err)
        store.set_status(conn, mailbox.id, "disabled", str(err), disabled_kind="permanent")
        conn.commit()
        return None
    metrics.failed("transient", err)
    failures = store.failures(conn, mailbox.id) + 1
    delay: float | None = None
    if failures >= settings.ingest_disable_after_failures:
        store.set_status(conn, mailbox.id, "disabled", f"outage: {err}",
                         disabled_kind="transient")
    else:
        delay = backoff_s(settings, failures)
        store.set_status(conn, mailbox.id, "retrying", str(err),
                         next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay))
    conn.commit()
    log.warning("mailbox=%s retrying (%d): %s", mailbox.address, failures, err)
    return delay
