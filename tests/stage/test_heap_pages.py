"""A stage process keeps the heap pages its messages pass through (mailroom.gctune): glibc's
malloc, left to itself, handed the free top of the heap back to the kernel and took fresh pages
(each a fault and a page zeroed) for every few messages."""

from __future__ import annotations

from pathlib import Path

from stage_toy import SPEC, raw

from mailroom.codec import Codec
from mailroom.gctune import keep_heap_pages
from mailroom.settings import Settings
from mailroom.stage import Context, Source
from mailroom.stage.workers import ProcessExecutor


def minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def test_a_worker_child_takes_no_fresh_pages_for_each_message() -> None:
    codec = Codec.from_settings(Settings())
    # Records of ordinary mail's size, answered with as much (the toy upper-cases them).
    contexts = [
        Context("toy", Source("t.in", 0, i, b"k", codec.encode_record(
            raw(i, (b"%06d " % i) * 4_500)), 1_700_000_000_000))
        for i in range(384)
    ]
    executor = ProcessExecutor(SPEC, Settings(), workers=1)
    try:
        executor.run_batch(contexts[:128])  # the child's heap grows to its working size
        child = executor._workers[0]
        assert child is not None
        before = minor_faults(child.proc.pid)
        for start in (128, 256):
            verdicts = executor.run_batch(contexts[start:start + 128])
            assert all(v is not None and v.kind == "ok" for v in verdicts)
        faults = minor_faults(child.proc.pid) - before
    finally:
        executor.close()
    # With glibc's own thresholds: ~14 faults a message here, 4–8 on the bench's mail.
    assert faults / 256 < 2, faults


def test_the_thresholds_are_set_where_the_c_library_is_glibc() -> None:
    assert keep_heap_pages() is True  # the Debian hosts the product runs on
