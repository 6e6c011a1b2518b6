"""What bench/e2e.py reports of the whole machine: its CPU an email against the monolith's, the
rate its cores allow, and how busy the run kept them (arithmetic on measured figures)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import meter, report  # noqa: E402
from bench.e2e import PipelineRun  # noqa: E402
from bench.mailgen import Mail  # noqa: E402
from bench.meter import Usage  # noqa: E402


def test_the_whole_machine_bounds_the_ratio(monkeypatch) -> None:
    monkeypatch.setattr(report.os, "cpu_count", lambda: 2)
    n = 1000
    mails = [Mail("u", f"m{i}@x", "forward", b"x") for i in range(n)]
    # The monolith: 1.4 s of its own CPU and 0.3 s of the services for 1,000 emails in 2 s.
    usage = {"monolith": Usage(1.4), "kafka": Usage(0.0), "postgres": Usage(0.1),
             "dovecot": Usage(0.2)}
    baseline = [{"emails": n, "seconds": 2.0, "cpu_s": 1.4, "usage": usage}] * 2
    # The pipeline: 2.5 s in the stages, 1.0 s in the services, 1,000 emails in 2.5 s.
    run = PipelineRun(processes=1, seconds=2.5, emails_per_s=400.0, rows=n, expected=n,
                      usage={"ingest": Usage(0.3), "unwrap": Usage(1.4), "persist": Usage(0.8),
                             "kafka": Usage(0.2), "postgres": Usage(0.6),
                             "dovecot": Usage(0.2)})
    args = argparse.Namespace(mix="realistic", size=1)
    f = report.figures(args, mails, baseline, [run], {})
    [p] = f["pipeline"]
    assert f["baseline"]["machine_cpu_ms_per_email"] == 1.7
    assert p["machine_cpu_ms_per_email"] == 3.5
    assert p["machine_cpu_vs_monolith"] == round(3.5 / 1.7, 2)
    assert p["cores_allow_emails_per_s"] == round(2 * 1000 / 3.5, 1)  # 571.4
    assert p["ratio_bound"] == round(2 * 1000 / 3.5 / 500, 3)  # against the monolith's 500/s
    assert p["cores_busy"] == round(400 / (2 * 1000 / 3.5), 2)
    assert "2 cores allow 571 emails/s, 1.14×" in report.table(f)


def test_a_short_run_says_so_and_how_many_mails_would_not_be(monkeypatch) -> None:
    monkeypatch.setattr(report.os, "cpu_count", lambda: 2)
    mails = [Mail("u", f"m{i}@x", "forward", b"x") for i in range(3000)]
    usage = {"monolith": Usage(4.2), "kafka": Usage(0.0), "postgres": Usage(0.3),
             "dovecot": Usage(0.4)}
    baseline = [{"emails": 3000, "seconds": 5.0, "cpu_s": 4.2, "usage": usage}] * 2
    args = argparse.Namespace(mix="realistic", size=1)

    def run(seconds: float) -> PipelineRun:
        return PipelineRun(processes=1, seconds=seconds, emails_per_s=3000 / seconds,
                           rows=3000, expected=3000, usage={"unwrap": Usage(6.0)})

    short = report.table(report.figures(args, mails, baseline, [run(6.0)], {}))
    assert "a short run (6.0 s)" in short
    assert "--mails 9,000 or more" in short  # 500/s kept busy for 18 s
    sustained = report.table(report.figures(args, mails, baseline, [run(20.0)], {}))
    assert "a short run" not in sustained


def test_the_hosts_share_of_the_machine_is_reported(monkeypatch) -> None:
    monkeypatch.setattr(report.os, "cpu_count", lambda: 2)
    mails = [Mail("u", f"m{i}@x", "forward", b"x") for i in range(1000)]
    usage = {"monolith": Usage(1.4), "postgres": Usage(0.1)}
    baseline = [{"emails": 1000, "seconds": 2.0, "cpu_s": 1.4, "usage": usage, "steal": s}
                for s in (0.0, 0.002)]
    run = PipelineRun(processes=1, seconds=2.5, emails_per_s=400.0, rows=1000, expected=1000,
                      usage={"unwrap": Usage(2.0)}, steal=0.031)
    f = report.figures(argparse.Namespace(mix="realistic", size=1), mails, baseline, [run], {})
    assert f["pipeline"][0]["host_steal"] == 0.031 and f["baseline"]["host_steal"] == 0.001
    assert "the host took 3.1% of the machine's time during the run (steal), 0.1% during" in (
        report.table(f))


def test_steal_is_the_hosts_share_of_the_ticks_between_two_readings() -> None:
    assert meter.steal_share((1000, 10), (1400, 30)) == 0.05
    assert meter.steal_share((5, 1), (5, 1)) == 0.0  # no time passed (or /proc/stat unread)
    total, steal = meter.host_ticks()
    assert total > 0 and 0 <= steal <= total
