"""Garbage-collector and memory-allocator settings for long-running stage processes.

A stage process allocates many short-lived containers per message (parsed MIME trees, record
dicts, Kafka client structures), so CPython's default collector runs a young-generation pass
every 700 allocations and, now and then, a full pass over *every* tracked object — the
clients, schemas, reference snapshots and imported modules included, none of which ever
becomes garbage. Measured on ingest alone: switching the collector off saved 12–25 % of its
CPU. Switching it off is not safe (reference cycles would pile up), so instead:

- :func:`gc.freeze` after start-up moves everything alive then into a permanent generation
  that no collection scans again;
- the young generation is collected every :data:`GEN0_THRESHOLD` allocations instead of 700,
  so a message's garbage is swept once or twice per batch rather than hundreds of times.

Reference counting still frees almost everything at once; only cycles wait a little longer.

And the C allocator (glibc's malloc, :func:`keep_heap_pages`): a stage moves blocks of tens of
kilobytes to a megabyte per message (records, chunks of them on the worker pipe, verdicts).
glibc's thresholds adapt to the last large block freed, so the free top of the heap was handed
back to the kernel and asked for again over and over: 2–8 fresh pages a message in a worker
child, each a page fault and a page the kernel zeroes. Fixed thresholds keep them: no fault a
message, 11–22 µs less of a worker's CPU a message on unwrap's and route's work
(``bench/stage_pipe.py``-like runs, the children's faults counted); a block of 4 MB or more (a
huge message) is still mapped on its own and returned when freed.
"""

from __future__ import annotations

import ctypes
import gc
import logging

log = logging.getLogger(__name__)

GEN0_THRESHOLD = 50_000

#: glibc's mallopt parameters (malloc.h) and the values kept.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 4 << 20  # smaller blocks come from the heap, not a mapping of their own
TRIM_THRESHOLD = 32 << 20  # free memory at the heap's top kept up to this
TOP_PAD = 1 << 20  # asked of the kernel at once when the heap grows


def tune_for_a_long_run() -> None:
    """Call once a process has finished starting (imports, clients, snapshots loaded)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    keep_heap_pages()


def keep_heap_pages() -> bool:
    """Fix glibc's malloc thresholds (see the module's docstring). False where the C library
    has no ``mallopt`` (not glibc): the defaults then stay, nothing else changes."""
    # The symbols the process has loaded already (libc's among them): ``ctypes.util.find_library``
    # would run ``ldconfig`` in a subprocess at every stage process's and worker's start.
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    done = [mallopt(option, value) == 1 for option, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (_M_TOP_PAD, TOP_PAD))]
    if not all(done):
        log.warning("malloc thresholds not all set (mallopt answered %s)", done)
    return all(done)
