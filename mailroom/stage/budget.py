"""Per-message time budget: where the handler runs, and how an overrun is stopped.

Why a worker subprocess by default (``stage_isolation=process``)
------------------------------------------------------------------
kafka-python sends heartbeats from a background thread, but that thread needs the GIL. Pure
Python work yields the GIL every 5 ms (``sys.getswitchinterval``), so ordinary parsing does not
starve it; a long call into C that holds the GIL does — a catastrophic ``re`` backtrack on a
crafted header, a huge ``bytes`` operation — and then the broker evicts the member after
``kafka_session_timeout_ms`` and every other partition of the process stalls with it. A thread
watchdog cannot help either: Python cannot interrupt a thread, and the watchdog itself needs
the GIL. So the handler runs in a child process (``multiprocessing`` *spawn*: a fresh
interpreter, never a fork of a process whose Kafka threads may hold locks). The consumer
process only waits on a pipe (``select``, GIL released), so heartbeats always flow, and when
the budget ``stage_budget_ms`` runs out the runner SIGKILLs the child, dead-letters the message
``timeout`` and starts a new child. A child that dies on a message (segfault, ``os._exit``, OOM)
is replaced and the message retried; after ``max_attempts`` deaths it is dead-lettered
``crash_loop``. Decoding and encoding run in the child too, so the two processes use both
cores: the consumer does network I/O while the child parses. The cost is a pipe round trip per
message (tens of microseconds for bytes; small next to parsing) and a child start (~0.5 s) after
a kill.

The child's address space is limited (``stage_worker_memory_mb``, ``RLIMIT_AS``): a message
that needs more — a crafted header or MIME tree that balloons when parsed — fails with
``MemoryError`` in the child and is dead-lettered ``out_of_memory``, instead of pushing the
machine into swap or the kernel's OOM killer (which might pick the consumer, or another
stage). The limit applies to the child only, so the consumer process is never affected.

``stage_isolation=inline`` runs the handler in the consumer's process: a ``SIGALRM`` timer
raises :class:`BudgetExceeded` at the next bytecode after the budget (dead letter ``timeout``);
for a call stuck in C, ``faulthandler``'s watchdog — a C thread that needs no GIL — dumps the
stacks and ``_exit``\\ s the process at twice the budget, and the durable attempt counter
(:mod:`mailroom.attempts`) turns repeated deaths into a ``crash_loop`` dead letter. Inline is for
tests, debugging and handlers too cheap to be worth a pipe.
"""

from __future__ import annotations

import faulthandler
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Protocol

from mailroom.codec import Codec
from mailroom.settings import Settings
from mailroom.stage.execute import StageSpec, execute
from mailroom.stage.types import CRASH_LOOP, TIMEOUT, Context, Verdict

log = logging.getLogger(__name__)

#: Longest a worker child may take to start (import, load the schemas) before it counts as broken.
STARTUP_S = 60.0


class BudgetExceeded(BaseException):  # noqa: N818 - not an Exception: handlers must not catch it
    """Raised by the inline alarm. A BaseException so a handler's ``except Exception`` (or
    :func:`execute`'s crash catch-all) cannot swallow it."""


class Executor(Protocol):
    def run(self, context: Context) -> Verdict: ...

    def close(self) -> None: ...


def make_executor(spec: StageSpec, codec: Codec, settings: Settings) -> Executor:
    if settings.stage_isolation == "inline":
        return InlineExecutor(spec, codec, settings)
    if settings.stage_isolation == "process":
        return ProcessExecutor(spec, settings)
    from mailroom.errors import ConfigError

    raise ConfigError(
        f"stage_isolation must be 'process' or 'inline', not {settings.stage_isolation!r}"
    )


def _timeout_verdict(budget_ms: int) -> Verdict:
    return Verdict(
        "dead", reason_code=TIMEOUT,
        reason=f"the handler overran its budget of {budget_ms} ms (stage_budget_ms)",
    )


class InlineExecutor:
    def __init__(self, spec: StageSpec, codec: Codec, settings: Settings) -> None:
        self.spec = spec
        self.codec = codec
        self.budget_ms = settings.stage_budget_ms
        if spec.setup is not None:
            spec.setup(settings)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        raise BudgetExceeded

    def run(self, context: Context) -> Verdict:
        budget_s = self.budget_ms / 1000
        # SIGALRM can only be handled in the main thread; elsewhere only the hard watchdog works.
        alarm = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGALRM, self._on_alarm) if alarm else None
        try:
            faulthandler.dump_traceback_later(2 * budget_s, exit=True)
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, budget_s)
            return execute(self.spec, self.codec, context)
        except BudgetExceeded:
            return _timeout_verdict(self.budget_ms)
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            faulthandler.cancel_dump_traceback_later()

    def close(self) -> None:
        pass


def _worker_main(conn: Connection, spec: StageSpec, settings: Settings) -> None:
    """The child: read Contexts, answer Verdicts, until the pipe closes."""
    # The parent owns shutdown: SIGTERM/SIGINT to the process group must not kill the child in
    # the middle of the batch the parent is finishing.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def orphan_watch() -> None:  # a child stuck in a hang must not outlive a killed parent
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=orphan_watch, daemon=True, name="orphan-watch").start()
    limit_memory(settings.stage_worker_memory_mb)
    from mailroom.codec import Codec as _Codec  # imported here: the child is a fresh interpreter

    codec = _Codec.from_settings(settings)
    if spec.setup is not None:  # before "ready": no message's budget pays for it
        spec.setup(settings)
    conn.send("ready")
    while True:
        try:
            context = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(execute(spec, codec, context))


def limit_memory(megabytes: int) -> None:
    """Cap this process's address space (0: leave it). Only ever called in a worker child."""
    if megabytes <= 0:
        return
    limit = megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


class ProcessExecutor:
    def __init__(self, spec: StageSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self.budget_ms = settings.stage_budget_ms
        self._mp = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self.deaths = 0  # children lost, for the status page

    def _start(self) -> Connection:
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            return self._conn
        self._stop_child()
        parent_end, child_end = self._mp.Pipe(duplex=True)
        proc = self._mp.Process(
            target=_worker_main, args=(child_end, self.spec, self.settings),
            name=f"mailroom-{self.spec.name}-worker", daemon=True,
        )
        proc.start()
        child_end.close()
        self._proc, self._conn = proc, parent_end
        # Wait for the child to be ready, so a message's budget never pays for the start-up.
        if not parent_end.poll(STARTUP_S) or parent_end.recv() != "ready":
            self._stop_child()
            raise RuntimeError(f"the {self.spec.name} worker did not start in {STARTUP_S} s")
        return parent_end

    def _stop_child(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(timeout=5)
            self._proc = None

    def run(self, context: Context) -> Verdict:
        died: list[str] = []
        while True:
            conn = self._start()
            try:
                conn.send(context)
                if conn.poll(self.budget_ms / 1000):
                    return conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                pass
            else:
                # No answer in time: a hang. Kill it; the message is dead-lettered, not retried
                # (a retry would burn another whole budget of partition time).
                log.error(
                    "handler overran %d ms on %s: killing worker pid %s",
                    self.budget_ms, context.source.coordinates(), self._proc.pid,
                )
                self._stop_child()
                return _timeout_verdict(self.budget_ms)
            code = None
            if self._proc is not None:
                self._proc.join(timeout=5)
                code = self._proc.exitcode
            self.deaths += 1
            died.append(str(code))
            log.error(
                "worker died (exit code %s) on %s, death %d", code,
                context.source.coordinates(), len(died),
            )
            self._stop_child()
            if len(died) >= self.settings.max_attempts:
                return Verdict(
                    "dead", reason_code=CRASH_LOOP,
                    reason=f"the handler killed its worker process {len(died)} times "
                    f"(exit codes {', '.join(died)})",
                )

    def close(self) -> None:
        self._stop_child()

