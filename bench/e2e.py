"""The yardstick: the whole pipeline against a one-process monolith, on the same mail, in the
same run, on the local stack.

    .venv/bin/python bench/e2e.py [--mails 3000] [--mix realistic|forwards] [--size 27000]
                                  [--processes 1[,2]] [--ways split,fused]
                                  [--latency-seconds S] [--stages-alone]

1. Lays N messages (by default a realistic mix: forwards, direct mail, replies, a few with a
   1–2 MB attachment) into two copies of the same Dovecot mailboxes: one for the monolith,
   one for the pipeline (each run of ``--processes`` gets its own).
2. Baseline: ``bench/monolith.py`` (FETCH → compat32 parse → original → COPY), run before and
   after each pipeline run; a pipeline run is compared with the mean of the two around it, so
   load that drifts during the run weighs on both sides alike.
3. Pipeline: K ``mailroom run STAGE`` processes per stage, warmed up on a few messages; then
   every message is delivered at once (renames into ``Maildir/new``, named as Dovecot's own
   delivery names files: ``harness.maildir_name``) and the clock runs until
   each one is an email activity row. Emails/s and the ratio pipeline/baseline. ``--ways
   split,fused`` runs it a second time with route inside unwrap's processes (``route_in_unwrap``).
4. Latency: messages delivered at half the measured rate for a while; arrival (the delivery's
   rename) → row (``email_activities.created_at``, persist's transaction start: a lower bound)
   and → visible (when a poll every 0.2 s first saw the row: an upper bound).
5. CPU seconds per email of each stage's process trees, the broker, PostgreSQL and Dovecot
   during step 3 (the last three are shared with whatever else runs on the stack), and peak
   RSS per stage process tree.
6. Checks: one email activity per message laid, whatever K; exits 1 when not.

``--stages-alone`` then runs each stage alone on a fresh copy, draining a full input.
Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Run as a script, this folder would come first on the path, and its ingest.py, unwrap.py, ...
# would shadow the packages of the same name: the repository comes first instead, and the
# bench's helpers are imported as the ``bench`` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

from bench import alone, harness, mailgen, report  # noqa: E402
from bench.meter import Every, Meter, Usage, host_ticks, server_peers, steal_share  # noqa: E402
from mailroom import settings as settings_module  # noqa: E402
from mailroom.console.stack import dovecot, kafka, postgres  # noqa: E402
from mailroom.settings import Settings  # noqa: E402

POLL_S = 0.2
WARMUP_TIMEOUT_S = 180.0
STALL_S = 90.0
IDLE_S = 3.0
PEERS_EVERY_S = 5.0  # connections are long-lived; looking at every socket is costly


@dataclass
class PipelineRun:
    processes: int
    way: str = "split"  # "fused": route inside unwrap's processes (route_in_unwrap)
    seconds: float = 0.0
    emails_per_s: float = 0.0
    steady_emails_per_s: float = 0.0  # first row to last: without the time to the first row
    usage: dict[str, Usage] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    expected: int = 0
    dead_letters: int = 0
    idle: dict[str, float] = field(default_factory=dict)  # CPU ms/s with nothing to do
    exits: dict[str, int | None] = field(default_factory=dict)
    error: str = ""
    steal: float = 0.0  # share of the machine's time the hypervisor took during the run


# --- the local stack -------------------------------------------------------------------------
def infra_roots(base: Settings) -> dict[str, list[int]]:
    """The shared services' root pids (each service's whole tree is measured)."""
    roots = {}
    for name, module in (("kafka", kafka), ("postgres", postgres), ("dovecot", dovecot)):
        status = module.status(base)
        if not status.running or status.pid is None:
            raise SystemExit(f"{name} of the local stack is not running ({status.state}): "
                             "mailroom stack up")
        roots[name] = [status.pid]
    return roots


def wait_rows(settings: Settings, expected: int, timeout_s: float, procs: harness.StageProcesses,
              on_first: Callable[[], None] = lambda: None) -> int:
    """Poll the email activities until ``expected``; calls ``on_first`` at the first row seen.
    Raises when a stage process died or the time is up."""
    deadline = time.monotonic() + timeout_s
    seen, moved = 0, time.monotonic()
    db = harness.Poller(settings)
    try:
        while True:
            n = int(db.query("SELECT count(*) FROM email_activities")[0][0])
            if n and not seen:
                on_first()
            if n != seen:
                seen, moved = n, time.monotonic()
            if n >= expected:
                return n
            dead = procs.dead()
            if dead:
                raise RuntimeError("a stage process exited: " + "\n".join(dead))
            # A message that never becomes a row (dead-lettered, stuck) should not cost the
            # whole timeout: no new row for STALL_S is an answer too.
            if time.monotonic() > min(deadline, moved + STALL_S):
                raise TimeoutError(f"{n} of {expected} email activities; none new for "
                                   f"{time.monotonic() - moved:.0f} s")
            # The run ends when the last row is seen: near the end, look ten times as often (a
            # look every 0.2 s added 0.1 s on average to a run of ~13 s, the monolith's own
            # clock stops when it is done).
            time.sleep(POLL_S if n < expected * 0.95 else POLL_S / 10)
    finally:
        db.close()


def _with_peers(clients: Callable[[], dict[str, list[int]]], infra: dict[str, list[int]],
                base: Settings, every_s: float = PEERS_EVERY_S,
                ) -> Callable[[], dict[str, list[int]]]:
    """The meter's groups: the clients' trees, the shared services' trees, and the PostgreSQL
    backends serving each client group ("postgres:unwrap", ...). Dovecot's sessions are not
    attributed: ingest opens one per poll, too short-lived for a sampler to find."""
    ports = {"postgres": base.postgres_port}
    peers = Every(lambda: server_peers(clients(), ports), every_s)
    return lambda: {**clients(), **infra, **peers()}


# --- the baseline ----------------------------------------------------------------------------
def run_monolith(w: harness.World, infra: dict[str, list[int]]) -> tuple[dict, dict[str, Usage]]:
    kinds = {local: "forward" if local == mailgen.FORWARD_LOCAL else "direct"
             for local in w.mailboxes}
    argv = [sys.executable, str(_HERE / "monolith.py"), "--schema", w.name,
            "--password", w.password, *(f"{w.login(b)}:{kind}" for b, kind in kinds.items())]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=_HERE.parent)
    # Looked for every second: the monolith connects once it has started, and may be quick.
    meter = Meter(_with_peers(lambda: {"monolith": [proc.pid]}, infra, w.base, 1.0)).start()
    ticks = host_ticks()
    out, _ = proc.communicate()
    steal = steal_share(ticks, host_ticks())
    usage = meter.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"the monolith failed ({proc.returncode})")
    return {**json.loads(out.strip().splitlines()[-1]), "steal": steal}, usage


# --- the pipeline ------------------------------------------------------------------------------
def run_pipeline(base: Settings, k: int, way: str, mails: list[mailgen.Mail],
                 maker: mailgen.MailMaker, args: argparse.Namespace, infra: dict[str, list[int]],
                 log_dir: Path) -> PipelineRun:
    run = PipelineRun(k, way)
    label = f"k{k}" + ("f" if way == "fused" else "")
    w = harness.world(base.replace(route_in_unwrap=way == "fused"), label)
    harness.create(w)
    procs = harness.StageProcesses(w, log_dir / w.name)
    try:
        staged = harness.stage_mail(w, mails)  # written now; invisible until delivered
        procs.start_all(k)
        warm = mailgen.warmup(w.name)
        run.expected = len(warm) + len(mails)  # the latency phase adds its own
        harness.lay(w, warm)
        wait_rows(w.settings, len(warm), WARMUP_TIMEOUT_S, procs)
        run.idle = _idle(procs, infra, w.base)
        with _profiled(procs, args.profile, label):
            _throughput(run, w, staged, len(warm), procs, infra)
        print(f"  pipeline K={k} {way}: {run.emails_per_s:,.0f} emails/s "
              f"({run.seconds:.1f} s)", flush=True)
        if args.latency_seconds > 0:
            run.latency = _latency(w, maker, len(mails), run, args.latency_seconds, procs)
        run.rows = harness.count_rows(w.settings)
    except Exception as exc:  # noqa: BLE001 - a failed run is a figure too: report it
        run.error = f"{type(exc).__name__}: {exc}"
        print(f"  pipeline K={k} {way} failed: {run.error}", flush=True)
        with contextlib.suppress(Exception):
            run.rows = harness.count_rows(w.settings)
    finally:
        run.exits = procs.stop()
        with contextlib.suppress(Exception):
            run.dead_letters = harness.dead_letters(w.settings)
        if not args.keep:
            harness.remove(w)
    return run


def _idle(procs: harness.StageProcesses, infra: dict[str, list[int]],
          base: Settings) -> dict[str, float]:
    """CPU ms per second of each group with no mail to work on: what polling costs (and a
    pause that lets the warm-up's last commits settle)."""
    time.sleep(0.5)
    meter = Meter(_with_peers(procs.pids, infra, base)).start()
    time.sleep(IDLE_S)
    return {name: round(u.cpu_s * 1000 / IDLE_S, 1) for name, u in sorted(meter.stop().items())}


@contextlib.contextmanager
def _profiled(procs: harness.StageProcesses, folder: Path | None, label: str) -> Iterator[None]:
    """py-spy on every stage process (its worker children included) while the block runs."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    spies = [subprocess.Popen([spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
                               "--rate", "100", "--gil", "--format", "raw",
                               "--output", str(folder / f"{label}-{stage}-{n}.txt")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for stage, pids in procs.pids().items() for n, pid in enumerate(pids, 1)]
    time.sleep(1.0)  # py-spy attaches before the mail is delivered
    try:
        yield
    finally:
        for s in spies:
            s.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for s in spies:
            try:
                s.wait(timeout=30)
            except subprocess.TimeoutExpired:
                s.kill()
        print(f"  profiles: {folder}/{label}-*.txt (raw collapsed stacks)", flush=True)


def _throughput(run: PipelineRun, w: harness.World, staged: list[harness.Staged], warm: int,
                procs: harness.StageProcesses, infra: dict[str, list[int]]) -> None:
    meter = Meter(_with_peers(procs.pids, infra, w.base)).start()
    first: list[float] = []
    ticks = host_ticks()
    started = time.perf_counter()
    for s in staged:
        harness.deliver(s)
    wait_rows(w.settings, warm + len(staged), 600 + len(staged) / 5, procs,
              on_first=lambda: first.append(time.perf_counter()))
    ended = time.perf_counter()
    run.steal = steal_share(ticks, host_ticks())
    run.usage = meter.stop()
    run.seconds = ended - started
    run.emails_per_s = len(staged) / run.seconds
    if first and ended > first[0]:
        run.steady_emails_per_s = len(staged) / (ended - first[0])


def _latency(w: harness.World, maker: mailgen.MailMaker, start: int, run: PipelineRun,
             seconds: float, procs: harness.StageProcesses) -> dict[str, float]:
    """Deliver at half the measured rate for ``seconds``; arrival → row percentiles."""
    rate = max(1.0, run.emails_per_s / 2)
    mails = maker.batch(start, max(1, int(rate * seconds)))
    staged = harness.stage_mail(w, mails)
    run.expected += len(mails)
    print(f"  latency: {len(mails)} emails at {rate:,.1f}/s…", flush=True)
    arrived: dict[str, float] = {}
    seen: dict[str, float] = {}
    t0 = moved = time.time()
    db = harness.Poller(w.settings)
    try:
        while len(seen) < len(mails):
            due = min(len(staged), int((time.time() - t0) * rate) + 1)
            for s in staged[len(arrived):due]:
                arrived[s.mail.message_id] = harness.deliver(s)
            # By Message-ID, not by id > the last id seen: with several persist processes a
            # transaction holding lower ids may commit after one holding higher ids.
            waiting = [m for m in arrived if m not in seen]
            for (message_id,) in db.query("SELECT message_id FROM email_activities "
                                          "WHERE message_id = ANY(%s)", (waiting,)):
                seen[message_id] = moved = time.time()
            if procs.dead() or time.time() - max(moved, t0 + seconds) > STALL_S:
                raise RuntimeError(f"latency phase: {len(seen)} of {len(mails)} rows, none new "
                                   f"for {STALL_S:.0f} s; " + "\n".join(procs.dead()))
            time.sleep(min(POLL_S, 1 / rate))
        created = dict(db.query(
            "SELECT message_id, extract(epoch FROM created_at)::float8 FROM email_activities "
            "WHERE message_id = ANY(%s)", (list(seen),)))
    finally:
        db.close()
    row = [created[m] - arrived[m] for m in seen]
    visible = [seen[m] - arrived[m] for m in seen]
    return {"mails": len(mails), "offered_per_s": rate, "seconds": seconds,
            **{f"row_p{q}_s": report.percentile(row, q) for q in (50, 95, 99)},
            **{f"visible_p{q}_s": report.percentile(visible, q) for q in (50, 95, 99)},
            "visible_max_s": max(visible)}


# --- main ----------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mails", type=int, default=3_000, help="messages laid (default 3000)")
    p.add_argument("--mix", choices=mailgen.MIXES, default="realistic")
    p.add_argument("--size", type=int, default=mailgen.DEFAULT_SIZE,
                   help="bytes of a typical message (default %(default)s)")
    p.add_argument("--processes", default="1",
                   help="processes per stage; a comma list runs the pipeline once per value")
    p.add_argument("--ways", default="split", metavar="split,fused",
                   help="how the pipeline runs: 'split' (a process per stage), 'fused' (route "
                   "inside unwrap's processes: route_in_unwrap), or both, one run each")
    p.add_argument("--latency-seconds", type=float, default=None,
                   help="length of the latency phase (default: 25 s, shorter for small N; "
                        "0: skip it)")
    p.add_argument("--stages-alone", action="store_true",
                   help="also run each stage alone draining a full input topic")
    p.add_argument("--keep", action="store_true",
                   help="keep the runs' schemas, topics and mail users (for a look afterwards)")
    p.add_argument("--profile", type=Path, default=None, metavar="DIR",
                   help="py-spy each stage's process tree during the throughput phase: one "
                        "file of raw collapsed stacks per stage process in DIR (samples of "
                        "the thread holding the GIL: Python's CPU, not its waits)")
    p.add_argument("--log-dir", type=Path, default=None,
                   help="stage logs (default: <state dir>/bench)")
    args = p.parse_args()
    args.ks = [int(k) for k in str(args.processes).split(",")]
    args.ways = args.ways.split(",")
    if not args.ways or set(args.ways) - {"split", "fused"}:
        raise SystemExit("--ways: split, fused or both (split,fused)")
    if args.latency_seconds is None:
        args.latency_seconds = min(25.0, max(5.0, args.mails / 100))
    return args


def main() -> int:
    args = parse_args()
    base = settings_module.load()
    infra = infra_roots(base)
    log_dir = args.log_dir or base.state_path / "bench"
    run_id = uuid.uuid4().hex[:6]
    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    maker = mailgen.MailMaker(args.mix, args.size, run_id)
    mails = maker.batch(0, args.mails)
    print(f"e2e bench: {report.describe(mails)}", flush=True)
    mono = harness.world(base, "mono")
    harness.create(mono, pipeline=False)
    baseline: list[dict] = []
    runs: list[PipelineRun] = []
    stages_alone: dict[str, dict[str, float]] = {}
    try:
        harness.lay(mono, mails)
        baseline.append(_monolith(mono, infra))
        for k in args.ks:
            for way in args.ways:
                # The latency phase continues the same sequence of mail: a maker per run.
                runs.append(run_pipeline(base, k, way, mails, mailgen.MailMaker(
                    args.mix, args.size, run_id), args, infra, log_dir))
                # A monolith run after each pipeline run: each is compared with the two
                # around it.
                baseline.append(_monolith(mono, infra))
        if args.stages_alone:
            stages_alone = alone.run_all(base, mails, log_dir, keep=args.keep)
    finally:
        if not args.keep:
            harness.remove(mono)
    figures = report.figures(args, mails, baseline, runs, stages_alone)
    figures["loadavg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    figures["code"] = code_version()
    print(report.table(figures))
    print(json.dumps(figures, sort_keys=True))
    return 0 if figures["ok"] else 1


def code_version() -> str:
    """The commit measured, and whether the checkout had changes (they were measured too)."""
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=_HERE.parent, capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def _monolith(w: harness.World, infra: dict[str, list[int]]) -> dict:
    try:
        result, usage = run_monolith(w, infra)
    except RuntimeError:
        # Once more: the shared PostgreSQL or Dovecot may have restarted under it.
        result, usage = run_monolith(w, infra)
    result["usage"] = usage
    print(f"  monolith: {result['emails'] / result['seconds']:,.0f} emails/s "
          f"({result['seconds']:.1f} s)", flush=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
