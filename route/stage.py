"""The route stage on the kernel's stream runner: ``mailroom.unwrapped`` → ``mailroom.actions``.

Why the kafka-python runner and not faust-streaming agents: route makes no per-message network
look-ups. Everything it decides with is an in-memory snapshot (ReferenceData + RouteConfig),
and everything that depends on other emails is a condition persist evaluates. Agent
concurrency would only overlap I/O that does not exist, while the kernel runner already gives
what the guarantees need (per-message budget, durable attempt counter, dead letters, commit
after produce) — the same as every other stage. Measured: ``bench/route.py``.

The snapshot is the edge's I/O: loaded from PostgreSQL (reference records, rules) when the
handler is made in its process (:class:`RouteHandler`, made by the spec with the runner's own
Settings — in the worker process too, which never reloads them from the environment) and
reloaded every ``route_reference_refresh_s`` (the clock only decides *when* to reload, never
what a plan says). A plan made with a slightly old snapshot is still right, because
correlation, contact creation and case decisions are re-checked by persist against its state.
The mailboxes (each one's owner: the mailboxes topic, :mod:`mailroom.mailboxes`) are not
reloaded on a clock: the runner reads the directory before every poll batch and hands the
handler's process the changes (:mod:`mailroom.stage.mailboxcopy`), so a mailbox added a moment
before its mail was written gives that mail its owner — and the worker opens no Kafka client.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from mailroom.db import connect
from mailroom.db.outage import LOST
from mailroom.errors import ConfigError, TransientError
from mailroom.records.action import Plan
from mailroom.records.email import Email
from mailroom.records.mailbox import MailboxRecord
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
    ``route_reference_refresh_s``; its mailboxes are the runner's copy of the directory,
    replaced whenever the runner hands a new one (:meth:`use_mailboxes`). ``settings=None`` with
    a snapshot: a fixed snapshot, never reloaded (unit tests)."""

    def __init__(self, settings: Settings | None, snapshot: Snapshot | None = None) -> None:
        self.settings = settings
        self.snapshot = snapshot
        #: the mailbox directory as the runner last handed it
        self.directory: Mapping[str, MailboxRecord] = {}
        if settings is not None and snapshot is None:
            try:
                self.snapshot = self._load(settings)
            except AWAY as exc:  # a refused connect too: the first email retries the load
                log.warning("route: reference snapshot not loaded at start (%s); retrying "
                            "later", exc)

    def use_mailboxes(self, mailboxes: Mapping[str, MailboxRecord]) -> None:
        """The runner's copy of the mailbox directory (:mod:`mailroom.stage.mailboxcopy`): fresh
        for every email it hands over next, so it replaces the snapshot's mailboxes at once."""
        self.directory = mailboxes
        snap = self.snapshot
        if snap is not None:
            self.snapshot = dataclasses.replace(snap, reference=dataclasses.replace(
                snap.reference, mailboxes=loader.mailboxes(mailboxes.values())))

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
        return load_snapshot(settings, self.directory)

    def __call__(self, email: Email, context: Context) -> Outcome:
        """The pure decision (plan) plus packaging; a skip is a plan too, so persist and
        ``mailroom trace`` see every email, tracked or not."""
        snap = self.current()
        return to_outcome(plan(email, snap.reference, snap.config, context.source.value or b""))


def load_snapshot(settings: Settings, mailboxes: Mapping[str, MailboxRecord]) -> Snapshot:
    """``mailboxes``: the mailbox directory (mailbox id → record)."""
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
                 input_type=Email, reads_mailboxes=True)


def main(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.stage.run import run_stage

    if settings.route_in_unwrap:
        raise ConfigError(
            "route decides inside unwrap's processes here (route_in_unwrap = true): this "
            "process is not needed. Stop it, or set route_in_unwrap = false for every process "
            "and restart unwrap")

    return run_stage(SPEC, settings)
