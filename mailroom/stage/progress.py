"""How a worker child answers a chunk, and how its runner knows which message it is on meanwhile.

A child answered each message with a pipe message of its own, so the runner knew which message
a child was on and since when (for the per-message budget, and to know which message a dying
child was on). Each answer woke the runner, and the child paid for waking it. Answering a chunk
at once saves the runner and its two children together ~70 µs of CPU a message with route
inside unwrap (772 → 701), ~80 with unwrap alone (713 → 634), ~20 with route alone (213 → 195):
pools of both versions on the bench's mail, alternating, best of six. Now:

- before each message the child writes a 24-byte *progress* record (chunk number, the message's
  place in it, when it started) on a pipe of its own that the runner never waits on; the runner
  reads what is there when it must know — when a budget may have run out, when the child died —
  so it knows exactly which message the child is on and since when, as before;
- the child keeps its verdicts and sends them together (:class:`Answers`): when the chunk is
  done, when they hold more than :data:`FLUSH_BYTES` (a huge message's), and — from a thread of
  the child — when the message it is on has taken longer than :data:`FLUSH_AFTER_S`, so a slow
  or hung message never holds back the answers of those before it.

What a dead or killed child had not sent is not lost work to account for: those messages were
done without fault, so they are dealt out again like the rest of its chunk; only the message it
was on is charged with the death or the timeout.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

#: A progress record: chunk number, the message's place in the chunk, when it started
#: (``time.monotonic``: one clock for every process of the host).
RECORD = struct.Struct("<QQd")
#: Verdicts waiting longer than this while the child is on one message are sent.
FLUSH_AFTER_S = 0.05
#: Verdicts holding more bytes than this are sent at once.
FLUSH_BYTES = 1 << 20


class ProgressWriter:
    """The child's end: one record before each message."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def started(self, number: int, index: int, at: float) -> None:
        # 24 bytes, well under PIPE_BUF: written whole, never interleaved.
        os.write(self.fd, RECORD.pack(number, index, at))


class ProgressReader:
    """The runner's end: the latest record, read when asked (the pipe is non-blocking)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._partial = b""
        self.latest: tuple[int, int, float] | None = None

    def read(self) -> tuple[int, int, float] | None:
        """The latest (chunk number, index, started) the child wrote, or None."""
        while True:
            try:
                data = os.read(self.fd, 64 * RECORD.size)
            except BlockingIOError:
                break
            if not data:  # the child is gone: what it wrote was read
                break
            data = self._partial + data
            whole = len(data) - len(data) % RECORD.size
            if whole:
                self.latest = RECORD.unpack_from(data, whole - RECORD.size)
            self._partial = data[whole:]
        return self.latest

    def close(self) -> None:
        os.close(self.fd)


class Answers:
    """The child's verdicts of the current chunk, kept and sent together (see the module)."""

    def __init__(self, send: Callable[[list[tuple[Any, ...]]], None],
                 progress: ProgressWriter) -> None:
        self._send = send
        self._progress = progress
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, ...]] = []
        self._bytes = 0
        self._since = 0.0  # when the message the child is on started

    def starting(self, number: int, index: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._since = now
        self._progress.started(number, index, now)

    def add(self, fields: tuple[Any, ...], size: int) -> None:
        with self._lock:
            self._pending.append(fields)
            self._bytes += size
            if self._bytes > FLUSH_BYTES:
                self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def flush_if_held(self) -> None:
        """From the child's thread: send what waits behind a message taking long."""
        with self._lock:
            if self._pending and time.monotonic() - self._since > FLUSH_AFTER_S:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            pending, self._pending, self._bytes = self._pending, [], 0
            self._send(pending)
