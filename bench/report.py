"""The e2e bench's figures: one dict (printed as the JSON line) and the readable table."""

from __future__ import annotations

import argparse
import math
import os
from collections import Counter
from typing import Any

from bench.mailgen import Mail
from bench.meter import Usage

MB = 1024 * 1024
STAGES = ("ingest", "unwrap", "route", "persist")
SHARED = ("kafka", "postgres", "dovecot")  # services of the stack: other work runs there too
#: A pipeline run shorter than this spends a noticeable part of it filling and draining the
#: stages (the first batch crossing them all, persist alone on the last): cores idle that a
#: sustained stream of mail keeps busy. Measured: ~6 s runs kept 76–92% of two cores busy,
#: ~17 s runs 90–95%.
SHORT_RUN_S = 12.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def describe(mails: list[Mail]) -> str:
    kinds = Counter(m.kind for m in mails)
    size = sum(len(m.data) for m in mails)
    return (f"{len(mails)} messages, {size / MB:,.1f} MB ("
            + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()) + ")")


def _per_email(usage: dict[str, Usage], n: int) -> dict[str, float]:
    return {name: round(u.cpu_s * 1000 / n, 3) for name, u in sorted(usage.items())}


def _rss(usage: dict[str, Usage], names: tuple[str, ...]) -> dict[str, float]:
    return {name: round(usage[name].peak_rss / MB, 1) for name in names if name in usage}


def figures(args: argparse.Namespace, mails: list[Mail], baseline: list[dict[str, Any]],
            runs: list[Any], stages_alone: dict[str, dict[str, float]]) -> dict[str, Any]:
    n = len(mails)
    rates = [b["emails"] / b["seconds"] for b in baseline]
    base_rate = sum(rates) / len(rates)
    base_cpu_ms = sum(b["cpu_s"] for b in baseline) * 1000 / (n * len(baseline))
    # Each monolith run must store exactly the mails laid too.
    base_ok = all(b["emails"] == n for b in baseline)
    out: dict[str, Any] = {
        "bench": "e2e", "mails": n, "mix": args.mix, "size": args.size,
        "bytes": sum(len(m.data) for m in mails), "kinds": dict(Counter(m.kind for m in mails)),
        "baseline": {
            "emails_per_s": round(base_rate, 1), "runs_emails_per_s": [round(r, 1) for r in rates],
            "rows": [b["emails"] for b in baseline], "rows_ok": base_ok,
            # The process's own CPU while it worked (psutil's figure would add its start-up).
            "cpu_ms_per_email": {**_per_email(baseline[0]["usage"], n),
                                 "monolith": round(base_cpu_ms, 3)},
            "peak_rss_mb": _rss(baseline[0]["usage"], ("monolith",)),
            # The hypervisor's share of the machine's time while the monolith ran (steal).
            "host_steal": round(sum(b.get("steal", 0.0) for b in baseline) / len(baseline), 4),
        },
        "pipeline": [], "stages_alone": stages_alone,
    }
    ok = base_ok
    base_shared = out["baseline"]["cpu_ms_per_email"]
    base_machine = base_cpu_ms + sum(base_shared.get(s, 0.0) for s in SHARED)
    out["baseline"]["machine_cpu_ms_per_email"] = round(base_machine, 3)
    cores = os.cpu_count() or 1
    for i, run in enumerate(runs):
        # The monolith runs just before and just after this pipeline run.
        around = sum(rates[i:i + 2]) / len(rates[i:i + 2])
        cpu = _per_email(run.usage, n)
        stages_cpu = sum(cpu.get(s, 0.0) for s in STAGES)
        rows_ok = not run.error and run.rows == run.expected
        clean_exit = all(code == 0 for code in run.exits.values())
        ok = ok and rows_ok and clean_exit
        out["pipeline"].append({
            "processes": run.processes, "way": run.way, "emails_per_s": round(run.emails_per_s, 1),
            "seconds": round(run.seconds, 2),
            "steady_emails_per_s": round(run.steady_emails_per_s, 1),
            "baseline_emails_per_s": round(around, 1),
            "ratio": round(run.emails_per_s / around, 3) if around else 0.0,
            "cpu_ms_per_email": cpu, "stages_cpu_ms_per_email": round(stages_cpu, 2),
            # CPU time is less disturbed by a busy machine than wall time: a second view.
            "stages_cpu_vs_monolith": round(stages_cpu / base_cpu_ms, 1) if base_cpu_ms else 0.0,
            **_machine(cpu, stages_cpu, base_machine, cores, run.emails_per_s, around),
            "peak_rss_mb": _rss(run.usage, STAGES),
            "latency": {k: round(v, 3) for k, v in run.latency.items()},
            "rows": run.rows, "expected": run.expected, "rows_ok": rows_ok,
            "dead_letters": run.dead_letters, "idle_cpu_ms_per_s": run.idle,
            "exits": run.exits, "clean_exit": clean_exit, "error": run.error,
            "host_steal": round(run.steal, 4),
        })
    out["ok"] = ok
    return out


def _machine(cpu: dict[str, float], stages_cpu: float, base_machine: float, cores: int,
             rate: float, base_rate: float) -> dict[str, Any]:
    """The whole machine's CPU an email (the stages and the stack's services) and what it
    allows: the rate if every core were busy with it, that rate against the monolith's, and
    how much of the cores the run kept busy. The pipeline cannot beat that bound by tuning
    processes; only by spending less an email (or with more cores)."""
    machine = stages_cpu + sum(cpu.get(s, 0.0) for s in SHARED)
    if machine <= 0:
        return {}
    cores_allow = cores * 1000 / machine
    return {
        "machine_cpu_ms_per_email": round(machine, 3),
        "machine_cpu_vs_monolith": round(machine / base_machine, 2) if base_machine else 0.0,
        "cores": cores,
        "cores_allow_emails_per_s": round(cores_allow, 1),
        "ratio_bound": round(cores_allow / base_rate, 3) if base_rate else 0.0,
        "cores_busy": round(rate / cores_allow, 2),
    }


def _mails_for(p: dict[str, Any], seconds: float) -> int:
    """Messages that would keep this pipeline busy for ``seconds``, rounded up to 1,000s."""
    return max(1000, -(-int(p["emails_per_s"] * seconds) // 1000) * 1000)


def table(f: dict[str, Any]) -> str:
    b = f["baseline"]
    lines = [
        "",
        f"mail: {f['mails']} messages ({f['mix']}, {f['bytes'] / MB:,.1f} MB): "
        + ", ".join(f"{n} {k}" for k, n in sorted(f["kinds"].items())),
        f"baseline, monolith in 1 process: {b['emails_per_s']:,.0f} emails/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in b['runs_emails_per_s'])}); "
        f"CPU {b['cpu_ms_per_email'].get('monolith', 0):.2f} ms/email, "
        f"peak RSS {b['peak_rss_mb'].get('monolith', 0):.0f} MB",
    ]
    for p in f["pipeline"]:
        lines += _pipeline_lines(p, b)
    if f["stages_alone"]:
        lines += ["", "each stage alone, draining a full input:",
                  f"  {'stage':<9}{'msg/s':>9}{'CPU ms/msg':>12}{'peak RSS MB':>13}"]
        for stage, a in f["stages_alone"].items():
            lines.append(f"  {stage:<9}{a['msgs_per_s']:>9,.0f}{a['cpu_ms_per_msg']:>12.2f}"
                         f"{a['peak_rss_mb']:>13.0f}")
    lines.append("")
    if "code" in f:
        lines.append(f"code measured: {f['code']}")
    if "loadavg_1min" in f:
        lines.append("machine load (1 min average) at start and end: "
                     + " / ".join(f"{x:.1f}" for x in f["loadavg_1min"]))
    lines.append("OK: every message is one email activity" if f["ok"] else
                 "FAILED: see 'rows', 'exits' and 'error' above")
    return "\n".join(lines)


def _pipeline_lines(p: dict[str, Any], b: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"pipeline, {p['processes']} process(es) per stage"
        + (", route inside unwrap" if p.get("way") == "fused" else "")
        + f": {p['emails_per_s']:,.1f} emails/s "
        f"({p['seconds']:.1f} s; {p['steady_emails_per_s']:,.1f}/s from the first row)",
        f"  RATIO pipeline/baseline {p['ratio']:.3f}× (monolith runs around it: "
        f"{p['baseline_emails_per_s']:,.0f} emails/s); the stages spend "
        f"{p['stages_cpu_vs_monolith']:.1f}× the monolith's CPU per email",
        f"  {'CPU ms/email':<22}{'process':>9}{'+its PG':>9}{'peak RSS MB':>13}",
    ]
    cpu, rss = p["cpu_ms_per_email"], p["peak_rss_mb"]
    idle = p["idle_cpu_ms_per_s"]
    for name in (s for s in STAGES if s in cpu):
        lines.append(f"  {name:<22}{cpu.get(name, 0):>9.2f}{cpu.get('postgres:' + name, 0):>9.2f}"
                     f"{rss.get(name, 0):>13.0f}"
                     f"   idle: {idle.get(name, 0):.0f} ms CPU/s")
    lines.append(f"  {'stages, sum':<22}{p['stages_cpu_ms_per_email']:>9.2f}")
    m = b["cpu_ms_per_email"]
    lines.append(f"  {'monolith, for scale':<22}{m.get('monolith', 0):>9.2f}"
                 f"{m.get('postgres:monolith', 0):>9.2f}"
                 f"{b['peak_rss_mb'].get('monolith', 0):>13.0f}")
    for name in SHARED:
        lines.append(f"  {name + ', all (shared)':<22}{cpu.get(name, 0):>9.2f}"
                     f"   (during the monolith's run: {m.get(name, 0):.2f})")
    if "machine_cpu_ms_per_email" in p:
        lines.append(
            f"  whole machine: {p['machine_cpu_ms_per_email']:.2f} ms CPU/email (the monolith's "
            f"{b.get('machine_cpu_ms_per_email', 0):.2f}: {p['machine_cpu_vs_monolith']:.1f}×); "
            f"{p['cores']} cores allow {p['cores_allow_emails_per_s']:,.0f} emails/s, "
            f"{p['ratio_bound']:.2f}× — this run kept {p['cores_busy']:.0%} of them busy")
    if p.get("host_steal") or b.get("host_steal"):
        # A virtual machine's host may run other guests on these cores when both are busy:
        # time neither the pipeline nor the monolith had, counted in no process.
        lines.append(
            f"  the host took {p.get('host_steal', 0):.1%} of the machine's time during the run "
            f"(steal), {b.get('host_steal', 0):.1%} during the monolith's")
    if 0 < p["seconds"] < SHORT_RUN_S:
        lines.append(
            f"  a short run ({p['seconds']:.1f} s): its start and end left cores idle, so the "
            f"ratio understates sustained mail; --mails {_mails_for(p, SHORT_RUN_S * 1.5):,} "
            "or more for that")
    lat = p["latency"]
    if lat:
        lines.append(
            f"  latency at {lat['offered_per_s']:,.1f} emails/s offered for "
            f"{lat['seconds']:.0f} s ({lat['mails']:.0f} emails): arrival→row p50/p95/p99 "
            f"{lat['row_p50_s']:.2f}/{lat['row_p95_s']:.2f}/{lat['row_p99_s']:.2f} s; "
            f"→visible {lat['visible_p50_s']:.2f}/{lat['visible_p95_s']:.2f}/"
            f"{lat['visible_p99_s']:.2f} s (max {lat['visible_max_s']:.1f} s)")
    lines.append(f"  rows: {p['rows']} email activities, {p['expected']} expected, "
                 f"{p['dead_letters']} dead letters"
                 + ("" if p["rows_ok"] else "  <-- MISMATCH")
                 + ("" if p["clean_exit"] else f"; exits {p['exits']}")
                 + (f"; error: {p['error']}" if p["error"] else ""))
    return lines
