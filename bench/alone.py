"""Each stage alone, draining a full input: messages/s, CPU per message, peak RSS.

On a fresh copy of the mail: ingest alone fetches every message into ``raw``; then unwrap alone
drains ``raw``, route alone ``unwrapped``, persist alone ``actions`` — one process each, nothing
else of the pipeline running. The clock and the CPU count start at the first progress seen, so
a stage's start-up (imports, joining the group) is not charged to its messages; a run too small
to see progress before the end falls back to counting from the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bench import harness
from bench.mailgen import Mail
from bench.meter import MB, Meter
from mailroom.console.demo.progress import raw_count
from mailroom.console.ops.groups import Cluster, stage_group
from mailroom.settings import Settings

POLL_S = 0.2
TIMEOUT_S = 600.0


def consumed(cluster: Cluster, settings: Settings, stage: str) -> int:
    """Records of the stage's input its group has committed past."""
    tps = cluster.partitions(stage)
    begin = cluster.beginning_offsets(tps)
    committed = cluster.kafka_committed(stage_group(settings, stage))
    return sum(committed.get(tp, begin[tp]) - begin[tp] for tp in tps)


def run_all(base: Settings, mails: list[Mail], log_dir: Path, *,
            keep: bool = False) -> dict[str, dict[str, float]]:
    w = harness.world(base, "alone")
    harness.create(w)
    out: dict[str, dict[str, float]] = {}
    try:
        harness.lay(w, mails)
        n = len(mails)
        db = harness.Poller(w.settings)
        with Cluster(w.settings) as cluster:
            progress: dict[str, Callable[[], int]] = {
                "ingest": lambda: raw_count(cluster, w.settings),
                "unwrap": lambda: consumed(cluster, w.settings, "unwrap"),
                "route": lambda: consumed(cluster, w.settings, "route"),
                "persist": lambda: int(db.query("SELECT count(*) FROM email_activities")[0][0]),
            }
            for stage in harness.STAGES:
                try:
                    out[stage] = alone(w, stage, progress[stage], n, log_dir / w.name)
                except Exception as exc:  # noqa: BLE001 - reported, and the next stage waits
                    print(f"  {stage} alone failed: {type(exc).__name__}: {exc}", flush=True)
                    break  # the later stages' input is not complete
                print(f"  {stage} alone: {out[stage]['msgs_per_s']:,.0f} msg/s, "
                      f"{out[stage]['cpu_ms_per_msg']:.2f} ms CPU/msg", flush=True)
        db.close()
    finally:
        if not keep:
            harness.remove(w)
    return out


def alone(w: harness.World, stage: str, progress: Callable[[], int], total: int,
          log_dir: Path) -> dict[str, float]:
    procs = harness.StageProcesses(w, log_dir)
    procs.start(stage)
    meter = Meter(procs.pids).start()
    started, first, first_n, first_cpu = time.perf_counter(), 0.0, 0, 0.0
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while (n := progress()) < total:
            if n and not first:
                first, first_n = time.perf_counter(), n
                first_cpu = meter.now()[stage].cpu_s
            dead = procs.dead()
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{stage} alone: {n} of {total}; " + "\n".join(dead))
            time.sleep(POLL_S)
        ended = time.perf_counter()
    finally:
        usage = meter.stop()
        procs.stop()
    if not first or total - first_n < total / 2:
        first, first_n, first_cpu = started, 0, 0.0  # too little seen in between: from start
    msgs = total - first_n
    return {"messages": msgs, "msgs_per_s": round(msgs / (ended - first), 1),
            "cpu_ms_per_msg": round((usage[stage].cpu_s - first_cpu) * 1000 / msgs, 3),
            "peak_rss_mb": round(usage[stage].peak_rss / MB, 1),
            "from_start": first == started}
