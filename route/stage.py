"""The route stage on the kernel's stream runner: ``mailroom.unwrapped`` → ``mailroom.actions``.

Why the kafka-python runner and not faust-streaming agents: route makes no per-message network
look-ups. Everything it decides with is an in-memory snapshot (ReferenceData + RouteConfig),
and everything that depends on other emails is a condition persist evaluates. Agent
concurrency would only overlap I/O that does not exist, while the kernel runner already gives
what the guarantees need (per-message budget, durable attempt counter, dead letters, commit
after produce) — the same as every other stage. Measured: ``bench/route.py``.

The snapshot is the edge's I/O: loaded from PostgreSQL when the handler's process starts
(:func:`setup`, the StageSpec hook the runner calls with its own Settings — in the spawned
worker too, which never reloads them from the environment) and reloaded every
``route_reference_refresh_s`` (the clock only decides *when* to reload, never what a plan says).
A plan made with a slightly old snapshot is still right, because correlation, contact creation
and case decisions are re-checked by persist against its state.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from dataclasses import dataclass

from mailroom.db import connect
from mailroom.db.outage import LOST
from mailroom.errors import TransientError
from mailroom.records.action import Plan
from mailroom.records.email import Email
from mailroom.settings import Settings
from mailroom.stage.execute import StageSpec
from mailroom.stage.types import Context, Outcome, Output, Trace
from route import loader, store
from route.config import RouteConfig
from route.plan import plan
from route.reference import ReferenceData

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    reference: ReferenceData
    config: RouteConfig
    loaded_at: float


class _Holder:
    """Where the handler finds its snapshot, per process: set by :func:`setup` (or a test)."""

    settings: Settings | None = None
    snapshot: Snapshot | None = None


def install(settings: Settings | None, snapshot: Snapshot | None = None) -> None:
    """``settings=None`` with a snapshot: a fixed snapshot, never reloaded (unit tests)."""
    _Holder.settings, _Holder.snapshot = settings, snapshot


def load_snapshot(settings: Settings) -> Snapshot:
    with connect(settings) as conn:
        return Snapshot(loader.load(conn), store.load(conn), time.monotonic())


def setup(settings: Settings) -> None:
    """The StageSpec hook: remember the settings and load the snapshot before the first email.
    A database that is down now is not fatal: the first email retries the load."""
    install(settings)
    try:
        _Holder.snapshot = load_snapshot(settings)
    except LOST as exc:  # a refused connect too, not only a dropped one
        log.warning("route: reference snapshot not loaded at start (%s); retrying later", exc)


def _current() -> Snapshot:
    snap, settings = _Holder.snapshot, _Holder.settings
    if settings is None:
        if snap is None:
            raise RuntimeError("route: no settings or snapshot installed (StageSpec.setup)")
        return snap
    if snap is not None and time.monotonic() - snap.loaded_at <= settings.route_reference_refresh_s:
        return snap
    try:
        snap = load_snapshot(settings)
    except LOST as exc:
        if snap is None:  # nothing to decide with: the runner retries the email, then gives up
            raise TransientError(f"route: reference data unavailable: {exc}") from exc
        # The old snapshot is still right (see above); try again one refresh period later.
        log.warning("route: reloading the reference snapshot failed (%s); keeping the old", exc)
        snap = dataclasses.replace(snap, loaded_at=time.monotonic())
    _Holder.snapshot = snap
    return snap


def to_outcome(p: Plan) -> Outcome:
    detail = {f"{i:02d} {d.rule}": f"{d.outcome}: {d.detail}" for i, d in enumerate(p.decisions)}
    detail["steps"] = ", ".join(s.kind for s in p.steps)
    if p.accepting_owner:
        detail["accepted_by"] = p.accepting_owner
    trace = Trace(
        key=p.dedupe_key, event="skipped" if p.skipped else "routed", detail=detail,
        message_id=p.message_id, dedupe_key=p.dedupe_key,
    )
    return Outcome(outputs=(Output("actions", p.dedupe_key, p),), traces=(trace,))


def handle(email: Email, context: Context) -> Outcome:
    """The pure decision (plan) plus packaging; a skip is a plan too, so persist and
    ``mailroom trace`` see every email, tracked or not."""
    snap = _current()
    return to_outcome(plan(email, snap.reference, snap.config, context.source.value or b""))


SPEC = StageSpec(
    name="route", input_topic="unwrapped", handler=handle, input_type=Email, setup=setup
)


def main(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.stage.run import run_stage

    return run_stage(SPEC, settings)
