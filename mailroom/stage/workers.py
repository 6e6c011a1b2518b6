"""The pool of worker subprocesses a stream stage's handler runs in (``stage_isolation=process``).

Why subprocesses at all is written down in :mod:`mailroom.stage.budget`. This module is how
they are used without paying a pipe round trip per message:

- ``stage_workers`` children (default: one per core), each a fresh interpreter started with
  ``subprocess`` (never a fork of the runner, whose Kafka threads may hold locks) and joined to
  it by a socket pair; not through ``multiprocessing``'s *spawn*, which starts a resource
  tracker process beside them (~13 MB for semaphores and shared memory this pool never uses)
  and runs the runner's main script again in every child;
- the runner hands :meth:`ProcessExecutor.run_batch` a whole slice of its poll batch; the pool
  deals it out in chunks, one pickled list per pipe write, so the children parse in parallel
  while the consumer process waits on the pipes (``select``: the GIL is free for heartbeats);
  records and verdicts cross as tuples of their fields (:mod:`mailroom.stage.wire`);
- a child reports each message it starts on a progress pipe of its own and sends its verdicts
  several at a time (:mod:`mailroom.stage.progress`), so the parent knows which message a child
  is on and since when without waking for each answer: the per-message budget
  ``stage_budget_ms`` holds exactly as with one message in flight — a child over it is
  SIGKILLed, that message becomes a ``timeout`` verdict and the rest of its chunk (the messages
  it finished but had not answered yet included) is dealt out again;
- a child that dies (segfault, ``os._exit``, OOM) is replaced; the message it was on is tried
  again alone, and after ``max_attempts`` deaths it becomes a ``crash_loop`` verdict; the rest
  of its chunk is dealt out again. Verdicts come back in the order of the contexts given;
- for a stage that decides with the mailbox directory, the changes the runner read go down every
  child's pipe ahead of the next chunk, and a child started later gets the whole copy before
  its first chunk (:mod:`mailroom.stage.mailboxcopy`): the children never open a Kafka client.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from mailroom.gctune import tune_for_a_long_run
from mailroom.settings import Settings
from mailroom.stage.execute import StageSpec, execute
from mailroom.stage.mailboxcopy import MailboxChanges, MailboxCopy, Mailboxes
from mailroom.stage.progress import FLUSH_AFTER_S, Answers, ProgressReader, ProgressWriter
from mailroom.stage.types import CRASH_LOOP, TIMEOUT, Context, Verdict
from mailroom.stage.wire import (
    chunk_number,
    contexts_of,
    dump_chunk,
    dump_verdicts,
    is_chunk,
    load_verdicts,
    verdict_fields,
)

log = logging.getLogger(__name__)

#: Longest a worker child may take to start (import, load the schemas) before it counts as broken.
STARTUP_S = 60.0
#: Most messages dealt to one child at a time: small enough that a killed child costs little
#: re-dealing, large enough that a pipe write carries many messages.
MAX_CHUNK = 32


def chunk_size(waiting: int, workers: int) -> int:
    """How many of the ``waiting`` messages to deal to a child now: a share that shrinks with
    what is left (half of an even share, as guided self-scheduling does), so that near the
    end of what ``run_batch`` was given every child gets a few and they finish together. Split
    in halves of up to 32, the last chunks were a whole 32 for one child while the other had
    nothing (the runner acts on a slice only once all of it is answered): unwrap alone drained
    5-10% faster with the smaller last chunks. A lone child has no one to wait for: its
    chunks stay whole (each chunk is a pipe write and an answer)."""
    share = waiting if workers <= 1 else math.ceil(waiting / (2 * workers))
    return max(1, min(MAX_CHUNK, share))


def timeout_verdict(budget_ms: int) -> Verdict:
    return Verdict(
        "dead", reason_code=TIMEOUT,
        reason=f"the handler overran its budget of {budget_ms} ms (stage_budget_ms)",
    )


def _dumps(obj: object) -> bytes:
    """Pickled for the pipe. ``Connection.send`` would build a ForkingPickler per message (a
    copy of the reducer table each time) for what needs no reducer: plain records and bytes.
    The other end's ``recv`` reads it as it reads what ``send`` writes."""
    return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)


def _readable(conns: list[Connection], timeout: float) -> set[int]:
    """The file descriptors of ``conns`` with something to read (or closed: a dead child),
    waiting up to ``timeout`` seconds. One ``poll`` call (no descriptor limit, unlike
    ``select``): ``multiprocessing.connection.wait`` (and ``Connection.poll``, which uses it)
    builds and fills a selector object on every call, twice or more per message."""
    waiter = select.poll()
    for conn in conns:
        waiter.register(conn.fileno(), select.POLLIN)
    return {fd for fd, _event in waiter.poll(math.ceil(timeout * 1000))}


def worker_count(settings: Settings) -> int:
    return settings.stage_workers or os.cpu_count() or 1


#: What a child runs: ``python -c CHILD NAME FD PROGRESS_FD`` (the name shows in ``ps``).
CHILD = ("import sys; from mailroom.stage.workers import child; "
         "child(int(sys.argv[2]), int(sys.argv[3]))")


def child(fd: int, progress_fd: int) -> None:
    """A worker child's start: the parent's module path first (the spec's handler is pickled by
    reference: it may live in a module found only there), then the spec and settings."""
    conn = Connection(fd)
    sys.path[:] = pickle.loads(conn.recv_bytes())
    spec, settings = pickle.loads(conn.recv_bytes())
    _worker_main(conn, ProgressWriter(progress_fd), spec, settings)


def _worker_main(conn: Connection, progress: ProgressWriter, spec: StageSpec,
                 settings: Settings) -> None:
    """The child: read chunks of Contexts, answer one Verdict per message, until the pipe closes."""
    # The parent owns shutdown: SIGTERM/SIGINT to the process group must not kill the child in
    # the middle of the batch the parent is finishing.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    answers = Answers(lambda verdicts: conn.send_bytes(dump_verdicts(verdicts)), progress)

    def watch() -> None:
        while True:
            time.sleep(FLUSH_AFTER_S)
            if os.getppid() != parent:  # a child stuck in a hang must not outlive its parent
                os._exit(1)
            try:
                answers.flush_if_held()  # answers done must not wait behind a slow message
            except OSError:  # the parent is gone: the main thread finds out on its next read
                return

    threading.Thread(target=watch, daemon=True, name="answers-watch").start()
    limit_memory(settings.stage_worker_memory_mb)
    from mailroom.codec import Codec  # imported here: the child is a fresh interpreter

    codec = Codec.from_settings(settings)
    handler = spec.make_handler(settings)  # before "ready": no message's budget pays for it
    mailboxes = MailboxCopy(handler) if spec.reads_mailboxes else None
    tune_for_a_long_run()
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if not is_chunk(message):  # mailbox changes: no answer, the next chunk's are awaited
            assert isinstance(message, MailboxChanges), type(message)
            assert mailboxes is not None, "mailboxes sent to a stage that does not read them"
            mailboxes.apply(message)
            continue
        number = chunk_number(message)
        for index, context in enumerate(contexts_of(message)):
            answers.starting(number, index)
            verdict = execute(spec, handler, codec, context)
            answers.add(verdict_fields(verdict), sum(len(o.value) for o in verdict.outputs))
        answers.flush()


#: The buffer a worker's messages are read into is kept up to this size between them.
KEEP_BUFFER_BYTES = 8 << 20


def _read_exactly(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            raise EOFError("the worker closed its pipe")
        data += more
    return data


def limit_memory(megabytes: int) -> None:
    """Cap this process's address space (0: leave it). Only ever called in a worker child:
    see :mod:`mailroom.stage.budget` for why."""
    if megabytes <= 0:
        return
    limit = megabytes * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


@dataclass
class _Job:
    """One message of a run_batch: its place in the answer and the deaths it has caused."""

    index: int
    context: Context
    deaths: list[str] = field(default_factory=list)


class _Worker:
    """One child and the chunk it is working through."""

    def __init__(self, spec: StageSpec, settings: Settings, number: int) -> None:
        parent_end, child_end = socket.socketpair()
        progress_r, progress_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                # -P: the working directory is not put first on the child's path (its start
                # would import mailroom from whatever checkout the process was started in);
                # it takes the parent's path right after.
                [sys.executable, "-P", "-c", CHILD, f"mailroom-{spec.name}-worker-{number}",
                 str(child_end.fileno()), str(progress_w)],
                pass_fds=[child_end.fileno(), progress_w], stdin=subprocess.DEVNULL,
            )
        finally:
            child_end.close()
            os.close(progress_w)
        self.progress = ProgressReader(progress_r)
        self.conn = Connection(parent_end.detach())
        # Registered once: asked after every answer whether another is waiting (a poll object
        # made per question cost more than reading the answer).
        self._poller = select.poll()
        self._poller.register(self.conn.fileno(), select.POLLIN)
        try:
            self.conn.send_bytes(_dumps(list(sys.path)))
            self.conn.send_bytes(_dumps((spec, settings)))
        except OSError:  # died at once: wait_ready says so
            pass
        self._buffer = bytearray(0)
        self.chunk: list[_Job] = []
        self.number = 0  # of the current chunk: the child's progress records name it
        self.done = 0  # answers received for the current chunk
        self.since = 0.0  # when the message it is on started (monotonic), as last known

    def wait_ready(self, spec_name: str) -> None:
        # So a message's budget never pays for the start-up.
        if not self.conn.poll(STARTUP_S) or self.conn.recv() != "ready":
            self.stop()
            raise RuntimeError(f"the {spec_name} worker did not start in {STARTUP_S} s")

    def has_answer(self) -> bool:
        """Something to read now (or the pipe closed: a dead child)."""
        return bool(self._poller.poll(0))

    def receive(self) -> memoryview:
        """The next message the child sent (as ``Connection.send_bytes`` frames it), read into a
        buffer kept for the next one: valid until then. ``Connection.recv_bytes`` read a
        message of a chunk's verdicts (~1.5 MB with route inside unwrap) in ~200 KB pieces,
        each into a new bytes object sized for all that was left, then copied them into a
        BytesIO: a tenth of the runner's CPU. EOFError: the child is gone."""
        fd = self.conn.fileno()
        (size,) = struct.unpack("!i", _read_exactly(fd, 4))
        if size == -1:
            (size,) = struct.unpack("!Q", _read_exactly(fd, 8))
        if len(self._buffer) < size or len(self._buffer) > max(size, KEEP_BUFFER_BYTES):
            self._buffer = bytearray(size)  # grown for a long message, or let go after one
        view = memoryview(self._buffer)[:size]
        got = 0
        while got < size:
            n = os.readv(fd, [view[got:]])
            if n == 0:
                raise EOFError("the worker closed its pipe in the middle of a message")
            got += n
        return view

    @property
    def busy(self) -> bool:
        return self.done < len(self.chunk)

    @property
    def current(self) -> _Job:
        return self.chunk[self.done]

    def send_mailboxes(self, changes: MailboxChanges) -> None:
        """Ahead of the next chunk; the child answers nothing to it."""
        self.conn.send_bytes(_dumps(changes))

    def give(self, chunk: list[_Job]) -> None:
        # The progress records of the chunks before, read (and dropped): a pipe holds ~2,700
        # of them, and a child whose pipe is full waits — on a message it has not started.
        self.progress.read()
        self.chunk, self.done = chunk, 0
        self.number += 1
        self.since = time.monotonic()
        self.conn.send_bytes(dump_chunk([job.context for job in chunk], self.number))

    def position(self) -> int:
        """The place in the chunk of the message the child is on, as its progress records say,
        and ``since`` set to when it started: at least the first unanswered one (whose start is
        then not reported yet, and ``since`` stays the time of the last answer or the chunk)."""
        latest = self.progress.read()
        if latest is not None and latest[0] == self.number and latest[1] >= self.done:
            self.since = latest[2]
            return latest[1]
        return self.done

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_code(self) -> str:
        """As ``multiprocessing`` says it: the exit status, or minus the signal that ended it."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        return str(self.proc.returncode)

    def stop(self) -> None:
        self.conn.close()
        with contextlib.suppress(OSError):
            self.progress.close()
        if self.alive:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


class ProcessExecutor:
    """Runs the stage's handler in a pool of worker children; see the module docstring."""

    isolates_crashes = True
    whole_batch = False

    def __init__(self, spec: StageSpec, settings: Settings, workers: int | None = None) -> None:
        self.spec = spec
        self.settings = settings
        self.budget_ms = settings.stage_budget_ms
        self.size = workers or worker_count(settings)
        self._workers: list[_Worker | None] = [None] * self.size
        self.deaths = 0  # children lost, for the status page
        #: the mailbox directory as the runner last read it (None: not a stage that reads it, or
        #: nothing read yet): what a child started from now on is given first
        self._mailboxes: Mailboxes | None = None

    # --- the pool ------------------------------------------------------------------------------
    def _worker(self, slot: int) -> _Worker:
        worker = self._workers[slot]
        if worker is not None and worker.alive:
            return worker
        if worker is not None:
            worker.stop()
        worker = _Worker(self.spec, self.settings, slot)
        self._workers[slot] = worker
        worker.wait_ready(self.spec.name)
        if self._mailboxes is not None:
            # Before its first chunk, so it never decides without the copy the others hold. (A
            # child that dies meanwhile is found on the chunk's read, as any death.)
            with contextlib.suppress(OSError):
                worker.send_mailboxes(MailboxChanges.of(self._mailboxes))
        return worker

    def send_mailboxes(self, changes: MailboxChanges) -> None:
        """The runner's latest read of the directory, to every child now (they are all idle
        between batches) and to every child started later (whole)."""
        if not self.spec.reads_mailboxes:
            raise TypeError(f"stage {self.spec.name} does not read mailboxes (reads_mailboxes)")
        self._mailboxes = changes.apply(self._mailboxes or {})
        for slot, worker in enumerate(self._workers):
            if worker is None:
                continue
            try:
                worker.send_mailboxes(changes)
            except OSError:  # gone: its successor starts with the whole copy
                self._replace(slot)

    def _replace(self, slot: int) -> None:
        worker = self._workers[slot]
        if worker is not None:
            worker.stop()
        self._workers[slot] = None

    # --- running messages ----------------------------------------------------------------------
    def run(self, context: Context) -> Verdict:
        verdict = self.run_batch([context])[0]
        assert verdict is not None  # no deadline: every message is answered
        return verdict

    def run_batch(
        self, contexts: list[Context], deadline: float | None = None
    ) -> list[Verdict | None]:
        """One Verdict per context, in the same order. Past ``deadline`` (monotonic) nothing
        more is started and children still busy are stopped: their messages answer ``None``
        (the runner commits the answered prefix and the rest comes again)."""
        answers: list[Verdict | None] = [None] * len(contexts)
        todo: deque[_Job] = deque(_Job(i, c) for i, c in enumerate(contexts))
        budget_s = self.budget_ms / 1000
        busy: dict[int, _Worker] = {}
        while todo or busy:
            now = time.monotonic()
            if deadline is not None and now > deadline:
                for slot, worker in busy.items():
                    self._collect(slot, worker, answers, todo)  # answers sent before it count
                    self._replace(slot)
                break
            self._deal(todo, busy)
            timeout = min(w.since + budget_s for w in busy.values()) - now
            if deadline is not None:
                timeout = min(timeout, deadline - now)
            ready = _readable([w.conn for w in busy.values()], max(timeout, 0))
            for slot, worker in list(busy.items()):
                if worker.conn.fileno() in ready:
                    self._collect(slot, worker, answers, todo)
                elif time.monotonic() - worker.since > budget_s:
                    # As last known: the child may have moved on since (its progress says).
                    at = worker.position()
                    if time.monotonic() - worker.since > budget_s:
                        self._overran(slot, worker, at, answers, todo)
                if not worker.busy or self._workers[slot] is not worker:
                    busy.pop(slot)
        return answers

    def _deal(self, todo: deque[_Job], busy: dict[int, _Worker]) -> None:
        idle = [slot for slot in range(self.size) if slot not in busy]
        for slot in idle:
            if not todo:
                return
            if todo[0].deaths:
                chunk = [todo.popleft()]  # a message that killed a child runs alone
            else:
                size = chunk_size(len(todo), self.size)
                chunk = []
                while todo and len(chunk) < size and not todo[0].deaths:
                    chunk.append(todo.popleft())
            worker = self._worker(slot)
            try:
                worker.give(chunk)
            except OSError:  # died between start and now: the death is found on the next read
                worker.chunk, worker.done = chunk, 0
            busy[slot] = worker

    def _collect(self, slot: int, worker: _Worker, answers: list[Verdict | None],
                 todo: deque[_Job]) -> None:
        while worker.busy and worker.has_answer():
            try:
                data = worker.receive()
                try:
                    verdicts = load_verdicts(data)
                finally:
                    data.release()
            except (EOFError, OSError):
                self._died(slot, worker, answers, todo)
                return
            for verdict in verdicts:
                answers[worker.current.index] = verdict
                worker.done += 1
            worker.since = time.monotonic()
        if worker.busy:
            worker.position()  # when the message it is on now started

    def _died(self, slot: int, worker: _Worker, answers: list[Verdict | None],
              todo: deque[_Job]) -> None:
        code = worker.exit_code()
        # The message it was on, by its progress records (read after its end: all of them);
        # those before it were done without fault, their answers unsent: dealt out again.
        at = worker.position()
        job = worker.chunk[at]
        rest = worker.chunk[worker.done:at] + worker.chunk[at + 1:]
        self.deaths += 1
        job.deaths.append(code)
        log.error("worker died (exit code %s) on %s, death %d", code,
                  job.context.source.coordinates(), len(job.deaths))
        self._replace(slot)
        worker.chunk = []
        todo.extendleft(reversed(rest))
        if len(job.deaths) >= self.settings.max_attempts:
            answers[job.index] = Verdict(
                "dead", reason_code=CRASH_LOOP,
                reason=f"the handler killed its worker process {len(job.deaths)} times "
                f"(exit codes {', '.join(job.deaths)})",
            )
        else:
            todo.appendleft(job)

    def _overran(self, slot: int, worker: _Worker, at: int, answers: list[Verdict | None],
                 todo: deque[_Job]) -> None:
        # A hang: kill it; the message is dead-lettered, not retried (a retry would burn
        # another whole budget of partition time). ``at``: the message it is on (its progress).
        job = worker.chunk[at]
        rest = worker.chunk[worker.done:at] + worker.chunk[at + 1:]
        log.error("handler overran %d ms on %s: killing worker pid %s", self.budget_ms,
                  job.context.source.coordinates(), worker.proc.pid)
        self._replace(slot)
        worker.chunk = []
        answers[job.index] = timeout_verdict(self.budget_ms)
        todo.extendleft(reversed(rest))

    def close(self) -> None:
        for slot in range(self.size):
            self._replace(slot)
