"""Prometheus metrics and health endpoints of a stage process, wired once for every stage.

``serve(settings, stage, health)`` starts a small HTTP server on ``settings.metrics_port``
(0: off) in a daemon thread with three paths:

- ``/metrics``: Prometheus text format, this process's own registry;
- ``/healthz``: liveness — 200 while the stage's loop turned within the last
  ``kafka_max_poll_interval_ms`` (a wedged loop is restarted by the supervisor);
- ``/readyz``: readiness — 200 while the stage is joined, has partitions and none is paused.

Stages report through :meth:`StageMetrics.batch` after every committed batch (the stream
runner's ``on_batch`` hook, persist's loop). Counters are fed from the stages' own cumulative
counters (the difference since the last call), so a stage never counts twice.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` histograms, base units),
every series labelled with ``stage``:

- ``mailroom_records_in_total``, ``mailroom_records_out_total``,
  ``mailroom_dead_letters_total``, ``mailroom_retries_total``, ``mailroom_batches_total``;
- ``mailroom_processing_seconds``: one record through the stage's handler;
- ``mailroom_end_to_end_seconds``: from the message's arrival in Mailroom (ingest's fetch: the
  raw record's timestamp, carried downstream in the ``mailroom-arrived`` header) to this stage
  having committed it;
- ``mailroom_lag_messages{topic,partition}``: the stage's own lag as its consumer sees it
  (high watermark minus position of each assigned partition);
- ``mailroom_paused_partitions``: partitions stopped before a record of an unknown schema;
- ``mailroom_group_rejoins_total``, ``mailroom_group_unassigned_seconds``: the group watchdog's
  (:mod:`mailroom.groupwatch`), exported on the same registry by the stage's runner.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mailroom.settings import Settings

log = logging.getLogger(__name__)

ARRIVED_HEADER = "mailroom-arrived"  # ms since the epoch, set from the raw record's timestamp
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
E2E_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)


@dataclass
class Health:
    """What the endpoints ask; the stage's status object answers (read, never written here)."""

    alive: Callable[[], bool]
    ready: Callable[[], bool]


@dataclass
class Batch:
    """One committed batch, as every stage can describe it (cumulative counters)."""

    records_in: int
    records_out: int
    dead_lettered: int
    retried: int = 0
    processing_seconds: Iterable[float] = ()
    arrivals_ms: Iterable[int] = ()
    lag: Mapping[tuple[str, int], int] | None = None
    paused: int = 0


class StageMetrics:
    def __init__(self, stage: str, registry: CollectorRegistry | None = None) -> None:
        self.stage = stage
        self.registry = registry or CollectorRegistry()
        r = self.registry

        def counter(name: str, doc: str) -> Any:
            return Counter(name, doc, ["stage"], registry=r).labels(stage)

        self.records_in = counter("mailroom_records_in", "Records the stage consumed.")
        self.records_out = counter("mailroom_records_out", "Records the stage produced.")
        self.dead = counter("mailroom_dead_letters", "Messages the stage dead-lettered.")
        self.retried = counter("mailroom_retries", "Transient failures retried.")
        self.batches = counter("mailroom_batches", "Batches committed.")
        self.processing = Histogram(
            "mailroom_processing_seconds", "Time of one record in the stage's handler.",
            ["stage"], buckets=LATENCY_BUCKETS, registry=r).labels(stage)
        self.e2e = Histogram(
            "mailroom_end_to_end_seconds", "Arrival in Mailroom (ingest's fetch) to this stage "
            "having committed the message.", ["stage"], buckets=E2E_BUCKETS,
            registry=r).labels(stage)
        self.lag = Gauge("mailroom_lag_messages", "Records behind, per assigned partition.",
                         ["stage", "topic", "partition"], registry=r)
        self.paused = Gauge("mailroom_paused_partitions", "Partitions paused (unknown schema).",
                            ["stage"], registry=r).labels(stage)
        self._last = Batch(0, 0, 0, 0)

    def batch(self, b: Batch) -> None:
        for metric, now, before in [
            (self.records_in, b.records_in, self._last.records_in),
            (self.records_out, b.records_out, self._last.records_out),
            (self.dead, b.dead_lettered, self._last.dead_lettered),
            (self.retried, b.retried, self._last.retried),
        ]:
            if now > before:
                metric.inc(now - before)
        self._last = Batch(b.records_in, b.records_out, b.dead_lettered, b.retried)
        self.batches.inc()
        for seconds in b.processing_seconds:
            self.processing.observe(seconds)
        now_ms = time.time() * 1000
        for arrived in b.arrivals_ms:
            if arrived > 0:
                self.e2e.observe(max(0.0, (now_ms - arrived) / 1000))
        if b.lag is not None:
            self.lag.clear()
            for (topic, partition), behind in b.lag.items():
                self.lag.labels(self.stage, topic, str(partition)).set(behind)
        self.paused.set(b.paused)


def consumer_lag(consumer: Any) -> dict[tuple[str, int], int]:
    """High watermark minus position of each assigned partition, as the consumer last saw them
    (no request: call from the consumer's own thread)."""
    out = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is not None:
            out[(tp.topic, tp.partition)] = max(0, high - consumer.position(tp))
    return out


def arrived_ms(headers: Iterable[tuple[str, bytes]], timestamp: int) -> int:
    """When the message reached Mailroom: the header a stage carried, else this record's own
    timestamp (on the raw topic: ingest's fetch)."""
    for name, value in headers or ():
        if name == ARRIVED_HEADER:
            try:
                return int(bytes(value))
            except ValueError:
                break
    return timestamp


def serve(settings: Settings, metrics: StageMetrics, health: Health) -> ThreadingHTTPServer | None:
    """Start the endpoints on ``settings.metrics_port`` (0: nothing is started)."""
    if not settings.metrics_port:
        return None
    registry = metrics.registry

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok = health.alive() if path == "/healthz" else health.ready()
                self._send(200 if ok else 503, b"ok\n" if ok else b"not ok\n", "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:  # scrapes are not worth a log line each
            return

    server = ThreadingHTTPServer(("0.0.0.0", settings.metrics_port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("stage %s: metrics on :%d (/metrics, /healthz, /readyz)", metrics.stage,
             settings.metrics_port)
    return server
