"""The route stage on the kernel's stream runner: ``mailroom.unwrapped`` → ``mailroom.actions``.

Why the kafka-python runner and not faust-streaming agents: route makes no per-message network
look-ups. Everything it decides with is an in-memory snapshot (ReferenceData + RouteConfig),
and everything that depends on other emails is a condition persist evaluates. Agent
concurrency would only overlap I/O that does not exist, while the kernel runner already gives
what the guarantees need (per-message budget, durable attempt counter, dead letters, commit
after produce) — the same as every other stage. Measured: ``bench/route.py``.

The snapshot is the edge's I/O: loaded from PostgreSQL (reference records, rules) and the
mailbox directory (the mailboxes topic, :mod:`mailroom.mailboxes`) when the handler is made in
its process
(:class:`RouteHandler`, made by the spec with the runner's own Settings — in the spawned worker
too, which never reloads them from the environment) and reloaded every
``route_reference_refresh_s`` (the clock only decides *when* to reload, never what a plan says).
A plan made with a slightly old snapshot is still right, because correlation, contact creation
and case decisions are re-checked by persist against its state. One thing is read again at
once: an email from a mailbox the snapshot does not know, written after the directory was last
read, syncs the directory first (a mailbox added a moment ago must give its mail its owner).
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
from mailroom.mailboxes import MailboxDirectory
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
#: What makes a (re)load fail without ending the stage: PostgreSQL or the broker away.
AWAY: tuple[type[Exception], ...] = (*LOST, TransientError)


@dataclass
class Snapshot:
    reference: ReferenceData
    config: RouteConfig
    loaded_at: float


class RouteHandler:
    """The stage's handler, one per handling process (made by the spec with the runner's
    settings): the snapshot lives here, loaded when the handler is made and reloaded every
    ``route_reference_refresh_s``. ``settings=None`` with a snapshot: a fixed snapshot, never
    reloaded (unit tests)."""

    def __init__(self, settings: Settings | None, snapshot: Snapshot | None = None) -> None:
        self.settings = settings
        self.snapshot = snapshot
        self.directory = MailboxDirectory(settings) if settings is not None else None
        if settings is not None and snapshot is None:
            try:
                self.snapshot = self._load(settings)
            except AWAY as exc:  # a refused connect too: the first email retries the load
                log.warning("route: reference snapshot not loaded at start (%s); retrying "
                            "later", exc)

    def current(self) -> Snapshot:
        snap, settings = self.snapshot, self.settings
        if settings is None:
            if snap is None:
                raise RuntimeError("route: a handler without settings needs a fixed snapshot")
            return snap
        if snap is not None and (time.monotonic() - snap.loaded_at
                                 <= settings.route_reference_refresh_s):
            return snap
        try:
            snap = self._load(settings)
        except AWAY as exc:
            if snap is None:  # nothing to decide with: the runner retries the email, then gives up
                raise TransientError(f"route: reference data unavailable: {exc}") from exc
            # The old snapshot is still right (see above); try again one refresh period later.
            log.warning("route: reloading the reference snapshot failed (%s); keeping the old",
                        exc)
            snap = dataclasses.replace(snap, loaded_at=time.monotonic())
        self.snapshot = snap
        return snap

    def _load(self, settings: Settings) -> Snapshot:
        assert self.directory is not None
        return load_snapshot(settings, self.directory)

    def mailboxes_for(self, snap: Snapshot, email: Email, written_ms: int) -> Snapshot:
        """``snap``, with the mailbox directory read again when ``email`` names a mailbox it does
        not know and was written after the last read (the mailbox may be new)."""
        directory = self.directory
        if (directory is None or email.delivery.mailbox_id in snap.reference.mailboxes
                or not directory.behind(written_ms)):
            return snap
        try:
            found = loader.mailboxes(directory.sync().values())
        except TransientError as exc:
            log.warning("route: mailbox directory not read (%s); deciding with the last", exc)
            return snap
        snap = dataclasses.replace(
            snap, reference=dataclasses.replace(snap.reference, mailboxes=found))
        self.snapshot = snap
        return snap

    def __call__(self, email: Email, context: Context) -> Outcome:
        """The pure decision (plan) plus packaging; a skip is a plan too, so persist and
        ``mailroom trace`` see every email, tracked or not."""
        snap = self.mailboxes_for(self.current(), email, context.source.timestamp)
        return to_outcome(plan(email, snap.reference, snap.config, context.source.value or b""))


def load_snapshot(settings: Settings, directory: MailboxDirectory) -> Snapshot:
    mailboxes = directory.sync()
    with connect(settings) as conn:
        return Snapshot(loader.load(conn, mailboxes), store.load(conn), time.monotonic())


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


SPEC = StageSpec(name="route", input_topic="unwrapped", make_handler=RouteHandler,
                 input_type=Email)


def main(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.stage.run import run_stage

    return run_stage(SPEC, settings)
