"""Ingest at scale: how many mailboxes ``mailroom run ingest`` keeps polled, and how often.

N Dovecot users with a few messages each (written straight into their Maildirs), configured
through the product's own commands (``profile add``, ``mailbox import``), then K ``mailroom run
ingest`` processes. Once every mailbox has had a first pass (its mail ingested), the steady
state is measured for a window: most polls find nothing new. Figures, from ingest's own
records (each pass stamps the mailbox's ``status_at``; the bench samples them):

* mailboxes polled per second (passes in the window / window);
* poll interval p50/p95: time between two passes of the same mailbox;
* CPU per poll: the ingest processes' CPU, and Dovecot's (the whole local server, shared with
  whatever else uses it), per pass.

The profile's poll interval is 1 s by default, so a mailbox is due again at once: the
interval measured is how long the processes take to go round every mailbox.

Everything is named after the run (topic prefix, schema, Dovecot users) and removed after.

    .venv/bin/python bench/ingest_scale.py [--mailboxes 1000 10000] [--processes 1 2]
        [--window 60] [--messages-per-mailbox 3] [--settle-rounds 0] [--max-connections 8]
        [--keep-logs DIR] [--code CHECKOUT]

``--messages-per-mailbox 0`` makes the first round a login and an empty pass per mailbox (no
fetch, no publish): the way to reach the steady state of ten thousand mailboxes on a small
machine, where a first round that ingests 30,000 messages would take most of an hour.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import psutil

# Run as a script, this folder would come first on the path and its ingest.py would shadow the
# package: the repository comes first instead, the bench's helpers are the ``bench`` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

from bench import harness  # noqa: E402
from mailroom import settings as settings_module  # noqa: E402
from mailroom.console.demo.pipeline import Children  # noqa: E402
from mailroom.console.demo.seed import command  # noqa: E402
from mailroom.console.stack import dovecot  # noqa: E402

MESSAGES_PER_MAILBOX = 3  # the default: each first pass fetches and publishes these


@dataclass
class Scale:
    """One run's world: its users are ``<name>-<n>``."""

    world: harness.World
    count: int
    messages: int = MESSAGES_PER_MAILBOX  # written into each mailbox before the run

    def users(self) -> list[str]:
        return [self.world.login(f"m{n}") for n in range(self.count)]


def create(scale: Scale, max_connections: int, poll_interval: int) -> None:
    w, base, count = scale.world, scale.world.base, scale.count
    harness.create(w, pipeline=False)  # the schema (and the standard users, unused)
    harness.create_storage(w)
    vmail = pwd.getpwnam(dovecot.MAIL_USER)
    started = time.monotonic()
    for user in scale.users():
        dovecot.add_user(base, user, w.password)
        _seed(dovecot.maildir(base, user), vmail, scale.messages)
    print(f"  {count} Dovecot users with {scale.messages} messages each: "
          f"{time.monotonic() - started:.1f} s", flush=True)
    command(w.settings, ["profile", "add", "scale-imap", "--protocol", "imap",
                         "--host", "127.0.0.1", "--port", str(w.settings.imap_port),
                         "--tls", "none", "--poll-interval", str(poll_interval),
                         "--max-connections", str(max_connections)])
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-") as tmp:
        path = Path(tmp) / "mailboxes.csv"
        path.write_text("address,username\n" + "".join(
            f"{u}@scale.example,{u}\n" for u in scale.users()))
        os.environ[harness.PASSWORD_ENV] = w.password
        started = time.monotonic()
        command(w.settings, ["mailbox", "import", str(path), "--profile", "scale-imap",
                             "--password-env", harness.PASSWORD_ENV])
    print(f"  mailroom mailbox import of {count}: {time.monotonic() - started:.1f} s",
          flush=True)


def _seed(maildir: Path, vmail: pwd.struct_passwd, messages: int) -> None:
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for path in (maildir.parent, maildir, *(maildir / s for s in ("new", "cur", "tmp"))):
        os.chown(path, vmail.pw_uid, vmail.pw_gid)
    for i in range(messages):
        msg = EmailMessage()
        msg["From"], msg["To"] = f"s{i}@example.org", "someone@scale.example"
        msg["Subject"] = f"scale {i}"
        msg["Message-ID"] = f"<s{i}.{uuid.uuid4().hex}@example.org>"
        msg.set_content("hello\n" * 20)
        path = maildir / "new" / f"{time.time_ns()}.s{i}.bench"
        path.write_bytes(bytes(msg))
        os.chown(path, vmail.pw_uid, vmail.pw_gid)


def remove(scale: Scale) -> None:
    base = scale.world.base
    harness.remove(scale.world)
    users = list(scale.users())
    dovecot.remove_users(base, users)  # and Dovecot's auth lets go of their files
    for user in users:
        shutil.rmtree(dovecot.mail_root(base) / user, ignore_errors=True)


# --- measuring -------------------------------------------------------------------------------
def cpu_times(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds per process of these trees (a process's reaped children in its own)."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for p in (root, *root.children(recursive=True)):
                t = p.cpu_times()
                out[p.pid] = t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return out


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two looks: a process seen in both counts its difference, a new one
    all of it (an exited one is in its parent's reaped children)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def enabled(poller: harness.Poller) -> int:
    """How many mailboxes are enabled: a round is over when each of them has been passed (one
    the local server refused a login, disabled for it, is passed no more)."""
    return int(poller.query("SELECT count(*) FROM ingest_mailboxes WHERE enabled")[0][0])


def stamps(poller: harness.Poller) -> dict[int, float]:
    """Each mailbox's last pass that went well (epoch s)."""
    return {int(i): float(t) for i, t in poller.query(
        "SELECT id, extract(epoch FROM status_at) FROM ingest_mailboxes WHERE status = 'ok'")}


@dataclass
class Figures:
    mailboxes: int
    processes: int
    warmup_s: float
    window_s: float
    passes: int
    intervals: list[float]
    ingest_cpu_s: float
    dovecot_cpu_s: float

    def line(self) -> str:
        rate = self.passes / self.window_s
        p50 = statistics.median(self.intervals) if self.intervals else float("nan")
        p95 = (statistics.quantiles(self.intervals, n=20)[-1]
               if len(self.intervals) >= 20 else float("nan"))
        per = 1000 / self.passes if self.passes else float("nan")
        return (f"{self.mailboxes:>6} mailboxes {self.processes} process(es): "
                f"{rate:7.1f} mailboxes polled/s, interval p50 {p50:6.1f} s p95 {p95:6.1f} s "
                f"({len(self.intervals)} intervals), CPU per poll: ingest "
                f"{self.ingest_cpu_s * per:5.1f} ms, Dovecot {self.dovecot_cpu_s * per:5.1f} ms"
                f" (rounds before the window {self.warmup_s:.0f} s)")


def measure(scale: Scale, processes: int, window_s: float, warmup_limit_s: float,
            log_dir: Path, settle_rounds: int = 0) -> Figures:
    w = scale.world
    poller = harness.Poller(w.settings)
    children = Children(w.settings, log_dir)
    dovecot_pid = [p for p in [dovecot._pid(w.base)] if p]  # noqa: SLF001 - the stack's own
    try:
        started = time.time()
        for i in range(processes):
            children.start(f"ingest-{processes}-{i + 1}", ["run", "ingest"])
        pids = [c.process.pid for c in children.children]
        # First round: every mailbox passed once by these processes (and its mail ingested);
        # then ``settle_rounds`` more, each every mailbox passed again after the round before
        # ended: a window right after a slow first round measures that round, not the steady
        # state (its intervals reach back into it).
        rounds_from = started
        for n in range(1 + settle_rounds):
            while True:
                fresh = sum(1 for t in stamps(poller).values() if t > rounds_from)
                if fresh >= enabled(poller) or time.time() - started > warmup_limit_s:
                    break
                if children.dead():
                    raise SystemExit(f"an ingest process died; see {log_dir}")
                time.sleep(1.0)
            print(f"  {processes} process(es): round {n + 1}: {fresh} of {enabled(poller)} "
                  f"enabled mailboxes (of {scale.count}) passed in "
                  f"{time.time() - rounds_from:.0f} s", flush=True)
            rounds_from = time.time()
        warmup_s = time.time() - started
        print(f"  measuring {window_s:.0f} s", flush=True)
        seen = {i: [t] for i, t in stamps(poller).items()}
        first = 0  # first passes inside the window (the first round was not over)
        cpu0, dov0, t0 = cpu_times(pids), cpu_times(dovecot_pid), time.time()
        while time.time() - t0 < window_s:
            time.sleep(0.5)
            for i, t in stamps(poller).items():
                if i not in seen:
                    seen[i] = [t]
                    first += 1
                elif t != seen[i][-1]:
                    seen[i].append(t)
        cpu1, dov1, t1 = cpu_times(pids), cpu_times(dovecot_pid), time.time()
        passes = first + sum(len(ts) - 1 for ts in seen.values())
        intervals = [b - a for ts in seen.values() for a, b in zip(ts, ts[1:], strict=False)]
        return Figures(scale.count, processes, warmup_s, t1 - t0, passes, intervals,
                       cpu_used(cpu0, cpu1), cpu_used(dov0, dov1))
    finally:
        children.stop()
        poller.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--warmup-limit", type=float, default=900.0,
                        help="longest wait for the first round and the settling ones (seconds)")
    parser.add_argument("--settle-rounds", type=int, default=0,
                        help="rounds after the first before the window (1 for ten thousand "
                        "mailboxes: the steady state)")
    parser.add_argument("--messages-per-mailbox", type=int, default=MESSAGES_PER_MAILBOX,
                        help="messages in each mailbox before the run (0: empty mailboxes)")
    parser.add_argument("--max-connections", type=int, default=8,
                        help="the profile's max_connections")
    parser.add_argument("--poll-interval", type=int, default=1, help="the profile's, seconds")
    parser.add_argument("--keep-logs", type=Path, help="keep the processes' logs here")
    parser.add_argument("--code", type=Path, help="run the ingest processes from this checkout "
                        "(e.g. `git archive` of an earlier commit), to compare versions")
    args = parser.parse_args()
    # SIGTERM (and SIGINT, which a background job ignores) end the run through its clean-up.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    if args.code:
        os.environ["PYTHONPATH"] = str(args.code.resolve())  # the children's, not ours
    base = settings_module.load()
    logs = args.keep_logs or Path(tempfile.mkdtemp(prefix="mailroom-ingest-scale-"))
    results = []
    for count in args.mailboxes:
        print(f"{count} mailboxes:", flush=True)
        scale = Scale(harness.world(base, f"scale{count}"), count, args.messages_per_mailbox)
        try:  # removed also when the setup fails half-way
            create(scale, args.max_connections, args.poll_interval)
            for k in args.processes:
                figures = measure(scale, k, args.window, args.warmup_limit, logs / str(count),
                                  args.settle_rounds)
                print("  " + figures.line(), flush=True)
                results.append(figures)
        finally:
            remove(scale)
    print(f"\ncpus={os.cpu_count()} messages_per_mailbox={args.messages_per_mailbox} "
          f"max_connections={args.max_connections} "
          f"poll_interval={args.poll_interval}s window={args.window:.0f}s")
    for f in results:
        print(f.line())
    if not args.keep_logs:
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
