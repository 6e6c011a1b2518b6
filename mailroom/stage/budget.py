"""Per-message time budget: where the handler runs, and how an overrun is stopped.

Why a worker subprocess by default (``stage_isolation=process``)
------------------------------------------------------------------
kafka-python sends heartbeats from a background thread, but that thread needs the GIL. Pure
Python work yields the GIL every 5 ms (``sys.getswitchinterval``), so ordinary parsing does not
starve it; a long call into C that holds the GIL does — a catastrophic ``re`` backtrack on a
crafted header, a huge ``bytes`` operation — and then the broker evicts the member after
``kafka_session_timeout_ms`` and every other partition of the process stalls with it. A thread
watchdog cannot help either: Python cannot interrupt a thread, and the watchdog itself needs
the GIL. So the handler runs in a child process (a fresh interpreter started with
``subprocess``, never a fork of a process whose Kafka threads may hold locks). The consumer
process only waits on a pipe (``select``, GIL released), so heartbeats always flow, and when
the budget ``stage_budget_ms`` runs out the runner SIGKILLs the child, dead-letters the message
``timeout`` and starts a new child. A child that dies on a message (segfault, ``os._exit``, OOM)
is replaced and the message retried; after ``max_attempts`` deaths it is dead-lettered
``crash_loop``. Decoding and encoding run in the child too, so the consumer process only moves
bytes. There is a pool of such children (``stage_workers``, default one per core) and each gets
a chunk of the poll batch at once (:mod:`mailroom.stage.workers`): the pipe costs one write per
chunk, not a round trip per message, and one stage process uses every core. A child start costs
~0.5 s after a kill.

The child's address space is limited (``stage_worker_memory_mb``, ``RLIMIT_AS``): a message
that needs more — a crafted header or MIME tree that balloons when parsed — fails with
``MemoryError`` in the child and is dead-lettered ``out_of_memory``, instead of pushing the
machine into swap or the kernel's OOM killer (which might pick the consumer, or another
stage). The limit applies to the child only, so the consumer process is never affected.

``stage_isolation=inline`` runs the handler in the consumer's process: a ``SIGALRM`` timer
raises :class:`BudgetExceeded` at the next bytecode after the budget (dead letter ``timeout``);
for a call stuck in C, ``faulthandler``'s watchdog — a C thread that needs no GIL — dumps the
stacks and ``_exit``\\ s the process 1.5 to 2 budgets after the message began (armed again
only every half budget, not per message), and the durable attempt counter
(:mod:`mailroom.attempts`) turns repeated deaths into a ``crash_loop`` dead letter. Inline is for
tests, debugging and handlers too cheap to be worth a pipe.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
import time
from typing import Any, Protocol

from mailroom.codec import Codec
from mailroom.settings import Settings
from mailroom.stage.execute import StageSpec, execute
from mailroom.stage.mailboxcopy import MailboxChanges, MailboxCopy
from mailroom.stage.types import Context, Verdict
from mailroom.stage.workers import ProcessExecutor, timeout_verdict

log = logging.getLogger(__name__)


class BudgetExceeded(BaseException):  # noqa: N818 - not an Exception: handlers must not catch it
    """Raised by the inline alarm. A BaseException so a handler's ``except Exception`` (or
    :func:`execute`'s crash catch-all) cannot swallow it."""


class Executor(Protocol):
    """Runs a stage's handler over records and answers a Verdict for each. A stage with a
    per-record handler gets one of the two below from :func:`make_executor`; a stage with a
    batch handler (persist) is an executor itself."""

    #: True when a handler cannot kill the calling process (it runs in a child).
    isolates_crashes: bool
    #: True when the executor takes the poll batch as one piece — its effects are one unit of
    #: the commit strategy (persist's transaction) — so the runner hands it every partition's
    #: records at once instead of slices. It may raise TransientError: the unit is retried whole.
    whole_batch: bool

    def run(self, context: Context) -> Verdict: ...

    def run_batch(
        self, contexts: list[Context], deadline: float | None = None
    ) -> list[Verdict | None]:
        """One Verdict per context, in order (a pool runs them in parallel); ``None`` for those
        not run because ``deadline`` (monotonic) passed."""
        ...

    def close(self) -> None: ...


def make_executor(spec: StageSpec, codec: Codec, settings: Settings) -> Executor:
    """The executor ``stage_isolation`` names (its values are checked when Settings is made)."""
    if settings.stage_isolation == "inline":
        return InlineExecutor(spec, codec, settings)
    return ProcessExecutor(spec, settings)


class InlineExecutor:
    isolates_crashes = False
    whole_batch = False

    def __init__(self, spec: StageSpec, codec: Codec, settings: Settings) -> None:
        self.spec = spec
        self.codec = codec
        self.budget_ms = settings.stage_budget_ms
        self.handler = spec.make_handler(settings)
        self.mailboxes = MailboxCopy(self.handler) if spec.reads_mailboxes else None
        self._armed_at: float | None = None  # when the hard watchdog was last armed

    def send_mailboxes(self, changes: MailboxChanges) -> None:
        if self.mailboxes is None:
            raise TypeError(f"stage {self.spec.name} does not read mailboxes (reads_mailboxes)")
        self.mailboxes.apply(changes)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        raise BudgetExceeded

    def run(self, context: Context) -> Verdict:
        try:
            return self._run(context)
        finally:
            self._disarm()

    def run_batch(
        self, contexts: list[Context], deadline: float | None = None
    ) -> list[Verdict | None]:
        answers: list[Verdict | None] = []
        try:
            for context in contexts:
                if deadline is not None and time.monotonic() > deadline:
                    answers.append(None)
                else:
                    answers.append(self._run(context))
        finally:
            self._disarm()
        return answers

    def _run(self, context: Context) -> Verdict:
        budget_s = self.budget_ms / 1000
        self._arm(budget_s)
        # SIGALRM can only be handled in the main thread; elsewhere only the hard watchdog works.
        alarm = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGALRM, self._on_alarm) if alarm else None
        try:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, budget_s)
            return execute(self.spec, self.handler, self.codec, context)
        except BudgetExceeded:
            return timeout_verdict(self.budget_ms)
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)

    def _arm(self, budget_s: float) -> None:
        """The hard watchdog, armed for twice the budget and armed again only once half a
        budget has passed: every message starts with at least 1.5 budgets left on it, so it
        fires only well after the SIGALRM should have. Arming starts a C thread and disarming
        joins it: per message, that was ~10% of an inline stage's CPU."""
        now = time.monotonic()
        if self._armed_at is None or now - self._armed_at > budget_s / 2:
            faulthandler.dump_traceback_later(2 * budget_s, exit=True)
            self._armed_at = now

    def _disarm(self) -> None:
        if self._armed_at is not None:
            faulthandler.cancel_dump_traceback_later()
            self._armed_at = None

    def close(self) -> None:
        pass
