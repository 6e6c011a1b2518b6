"""Ingest's metrics, on top of the kernel's :class:`mailroom.metrics.StageMetrics`.

The kernel's series (``stage="ingest"``): ``mailroom_records_out_total`` counts messages
published (broker-acknowledged), ``mailroom_batches_total`` passes, ``mailroom_retries_total``
transient failures. Ingest adds:

- ``mailroom_ingest_failures_total{kind,cause}``: ``kind`` transient | permanent | fenced,
  ``cause`` the error's class (``AuthRefused``, ``Unreachable``, ``TlsFailure``, ...);
- ``mailroom_mailbox_enabled{mailbox}``: 1/0 per mailbox this process serves (the address;
  ``deploy/prometheus/alerts.yml`` alerts on 0). Mailboxes via a forward mailbox are not
  polled and not exported;
- ``mailroom_ingest_backlog_messages{mailbox,folder}`` and
  ``mailroom_ingest_backlog_oldest_age_seconds{mailbox,folder}``: ingest's own lag, as the
  last pass measured it; the age is computed at scrape time, so a stuck mailbox's age grows;
- ``mailroom_ingest_poll_seconds{protocol}``: one pass over one mailbox (no mailbox label: a
  histogram per mailbox would multiply series by hundreds);
- ``mailroom_ingest_idle_wakeups_total``: IMAP IDLE said new mail arrived (:mod:`ingest.idle`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ingest.store import FolderBacklog
from mailroom.metrics import LATENCY_BUCKETS, StageMetrics

STAGE = "ingest"
POLL_BUCKETS = (*LATENCY_BUCKETS, 60, 120, 300)


class _Backlog(Collector):
    """Backlog per mailbox folder: replaced whole after each look at every mailbox, and one
    mailbox's folders after each of its passes (passes run in worker threads: a lock)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[int, str], FolderBacklog] = {}
        self._lock = threading.Lock()

    @property
    def rows(self) -> list[FolderBacklog]:
        with self._lock:
            return list(self._rows.values())

    def replace(self, rows: list[FolderBacklog]) -> None:
        with self._lock:
            self._rows = {(r.mailbox_id, r.folder): r for r in rows}

    def update(self, mailbox_id: int, rows: list[FolderBacklog]) -> None:
        with self._lock:
            for key in [k for k in self._rows if k[0] == mailbox_id] if not rows else []:
                del self._rows[key]
            for r in rows:
                self._rows[(r.mailbox_id, r.folder)] = r

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = GaugeMetricFamily("mailroom_ingest_backlog_messages",
                                  "Messages on the server not yet ingested, per mailbox folder.",
                                  labels=["stage", "mailbox", "folder"])
        age = GaugeMetricFamily("mailroom_ingest_backlog_oldest_age_seconds",
                                "Age of the oldest message not yet ingested (0: none).",
                                labels=["stage", "mailbox", "folder"])
        now = datetime.now(UTC)
        for r in self.rows:
            if r.count is None:
                continue  # not measured yet: no value rather than a false 0
            labels = [STAGE, r.address, r.folder]
            count.add_metric(labels, r.count)
            oldest = (now - r.oldest).total_seconds() if r.count and r.oldest else 0.0
            age.add_metric(labels, max(0.0, oldest))
        yield count
        yield age


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.stage = StageMetrics(STAGE, registry)
        r = self.stage.registry
        self.failures = Counter("mailroom_ingest_failures", "Failed passes by kind and cause.",
                                ["stage", "kind", "cause"], registry=r)
        self.enabled = Gauge("mailroom_mailbox_enabled", "1 while a mailbox is enabled.",
                             ["stage", "mailbox"], registry=r)
        self.poll = Histogram("mailroom_ingest_poll_seconds", "One pass over one mailbox.",
                              ["stage", "protocol"], buckets=POLL_BUCKETS, registry=r)
        self.idle_wakeups = Counter("mailroom_ingest_idle_wakeups",
                                    "IMAP IDLE reported new mail.", ["stage"],
                                    registry=r).labels(STAGE)
        self._backlog = _Backlog()
        r.register(self._backlog)
        self._exported: set[str] = set()
        self.last_loop = time.monotonic()  # liveness: the runner's loop turned

    @property
    def registry(self) -> CollectorRegistry:
        return self.stage.registry

    def passed(self, protocol: str, seconds: float, published: int) -> None:
        self.poll.labels(STAGE, protocol).observe(seconds)
        self.stage.batches.inc()
        if published:
            self.stage.records_out.inc(published)

    def failed(self, kind: str, exc: BaseException) -> None:
        self.failures.labels(STAGE, kind, type(exc).__name__).inc()
        if kind == "transient":
            self.stage.retried.inc()

    def mailboxes(self, served: Iterable[tuple[str, bool]]) -> None:
        """The mailboxes this process serves now, (address, enabled); others are dropped."""
        now = set()
        for address, enabled in served:
            self.enabled.labels(STAGE, address).set(1 if enabled else 0)
            now.add(address)
        for gone in self._exported - now:
            self.enabled.remove(STAGE, gone)
        self._exported = now

    def backlog(self, rows: list[FolderBacklog]) -> None:
        self._backlog.replace(rows)

    def mailbox_backlog(self, mailbox_id: int, rows: list[FolderBacklog]) -> None:
        """One mailbox's folders, as its pass left them (current before the next look)."""
        self._backlog.update(mailbox_id, rows)
