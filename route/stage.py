"""The route stage on the kernel's stream runner: ``mailroom.unwrapped`` → ``mailroom.actions``.

Why the kafka-python runner and not faust-streaming agents: route makes no per-message network
look-ups. Everything it decides with is an in-memory snapshot (ReferenceData + RouteConfig),
and everything that depends on other emails is a condition persist evaluates. Agent
concurrency would only overlap I/O that does not exist, while the kernel runner already gives
what the guarantees need (per-message budget, durable attempt counter, dead letters, commit
after produce) — the same as every other stage. Measured: ``bench/route.py``.

The snapshot is the edge's I/O: loaded from PostgreSQL on first use in the process that runs
the handler and reloaded every :data:`REFRESH_SECONDS` (the clock only decides *when* to reload,
never what a plan says). A plan made with a slightly old snapshot is still right, because
correlation, contact creation and case decisions are re-checked by persist against its state.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from mailroom import settings as settings_module
from mailroom.db import connect
from mailroom.records.action import Plan
from mailroom.records.email import Email
from mailroom.settings import Settings
from mailroom.stage.execute import StageSpec
from mailroom.stage.types import Context, Outcome, Output, Trace
from route import loader, store
from route.config import RouteConfig
from route.plan import plan
from route.reference import ReferenceData

REFRESH_SECONDS = 60.0


@dataclass
class Snapshot:
    reference: ReferenceData
    config: RouteConfig
    loaded_at: float


class _Holder:
    """Where the handler finds the snapshot. Set by :func:`main` (or a test) before running."""

    settings: Settings | None = None
    snapshot: Snapshot | None = None


def install(settings: Settings | None, snapshot: Snapshot | None = None) -> None:
    _Holder.settings, _Holder.snapshot = settings, snapshot


def load_snapshot(settings: Settings) -> Snapshot:
    with connect(settings) as conn:
        return Snapshot(loader.load(conn), store.load(conn), time.monotonic())


def _current() -> Snapshot:
    snap = _Holder.snapshot
    stale = snap is None or time.monotonic() - snap.loaded_at > REFRESH_SECONDS
    if stale and _Holder.snapshot is None or stale and _Holder.settings is not None:
        # A spawned worker process (stage_isolation=process) starts with an empty holder: it
        # reads the same settings the parent did, from the environment it inherited.
        if _Holder.settings is None:
            _Holder.settings = settings_module.load()
        snap = _Holder.snapshot = load_snapshot(_Holder.settings)
    if snap is None:
        raise RuntimeError("route: no reference snapshot installed (call route.stage.install)")
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


SPEC = StageSpec(name="route", input_topic="unwrapped", handler=handle, input_type=Email)


def main(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.stage.run import run_stage

    install(settings)
    return run_stage(SPEC, settings)
