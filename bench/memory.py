"""Peak memory of each stage with one huge message in flight, against the same stages on ordinary
mail only: ``.venv/bin/python bench/memory.py [--huge-mb 50] [--mails 200]``.

On the local stack, in a world of its own (topic prefix, schema and Dovecot users named after the
run, removed afterwards): the four stages run one process each; first ``--mails`` ordinary
messages of the realistic mix go through (the reference peak), then the same number again with
one forward of ``--huge-mb`` in the middle (its original carrying one big attachment). Peak RSS is
sampled every 0.2 s per stage process tree (the runner and its worker children, summed: shared pages
count twice, an upper bound). Printed per stage: the peak on ordinary mail, the peak with the
huge message, and what became of the huge message (an activity, or a dead letter's reason).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path; the repository must.
_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == _HERE:
    sys.path[0] = str(_HERE.parent)

from bench import harness, mailgen  # noqa: E402
from bench.e2e import wait_rows  # noqa: E402
from bench.meter import MB, Meter  # noqa: E402
from mailroom import settings as settings_module  # noqa: E402

SAMPLE_S = 0.2
TIMEOUT_S = 900.0


def huge_forward(maker: mailgen.MailMaker, i: int, megabytes: int, run_id: str) -> mailgen.Mail:
    """A forward of about ``megabytes`` on the wire: its original carries one attachment of
    three quarters of that (base64 makes it a third larger, CRLFs a little more)."""
    message_id = f"huge{i}.{run_id}@mail.customer.example"
    original = maker.original(i, message_id, f"{mailgen.FORWARDERS[0]}@{mailgen.DOMAIN}", "",
                              large=False)
    size = megabytes * MB * 3 // 4 - 64 * 1024
    blob = base64.encodebytes(random.Random(i).randbytes(size)).replace(b"\n", b"\r\n")
    marker = b'Content-Type: application/pdf; name="document-'
    head, _, tail = original.rpartition(b"--mixed-")  # before the closing boundary
    part = (b"--mixed-" + str(i).encode() + b"\r\n" + marker + b'huge.pdf"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + blob)
    data = mailgen.forward(head + part + b"--mixed-" + tail, mailgen.FORWARDERS[0], i)
    return mailgen.Mail(mailgen.FORWARD_LOCAL, message_id, "huge", data)


def run(args: argparse.Namespace) -> dict:
    base = settings_module.load()
    run_id = f"mem{int(time.time()) % 100000}"
    maker = mailgen.MailMaker("realistic", mailgen.DEFAULT_SIZE, run_id)
    ordinary = maker.batch(0, args.mails)
    second = maker.batch(args.mails, args.mails)
    huge = huge_forward(maker, 2 * args.mails, args.huge_mb, run_id)
    second.insert(len(second) // 2, huge)
    w = harness.world(base, "mem")
    harness.create(w)
    procs = harness.StageProcesses(w, base.state_path / "bench" / w.name)
    out: dict = {"bench": "memory", "huge_mb": args.huge_mb,
                 "huge_bytes": len(huge.data), "mails": args.mails}
    try:
        procs.start_all(1)
        peaks = {}
        for phase, mails, before in (("ordinary", ordinary, 0),
                                     ("with_huge", second, len(ordinary))):
            meter = Meter(procs.pids, interval=SAMPLE_S).start()
            harness.lay(w, mails)
            try:
                wait_rows(w.settings, before + len(mails), TIMEOUT_S, procs)
            except (TimeoutError, RuntimeError) as exc:  # a dead letter, or a stage died: say so
                print(f"  {phase}: {exc}", flush=True)
            usage = meter.stop()
            peaks[phase] = {s: round(u.peak_rss / MB, 1) for s, u in sorted(usage.items())}
            print(f"  {phase}: peak RSS MB {peaks[phase]}", flush=True)
        out["peak_rss_mb"] = peaks
        db = harness.Poller(w.settings)
        try:
            found = db.query("SELECT count(*) FROM email_activities WHERE message_id = %s",
                             (huge.message_id,))[0][0]
            out["huge_activity"] = bool(found)
            out["rows"] = harness.count_rows(w.settings)
        finally:
            db.close()
        out["dead_letters"] = harness.dead_letters(w.settings)
    finally:
        out["exits"] = procs.stop()
        harness.remove(w)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--huge-mb", type=int, default=50, help="size of the huge message (default 50)")
    p.add_argument("--mails", type=int, default=200, help="ordinary messages per phase")
    args = p.parse_args()
    out = run(args)
    peaks = out.get("peak_rss_mb", {})
    print(f"\npeak RSS per stage process tree, MB (the second phase carries one message of "
          f"{out['huge_bytes'] / MB:.0f} MB)")
    print(f"  {'stage':10} {'ordinary':>9} {'with huge':>10}")
    for stage in harness.STAGES:
        print(f"  {stage:10} {peaks.get('ordinary', {}).get(stage, 0):9.0f} "
              f"{peaks.get('with_huge', {}).get(stage, 0):10.0f}")
    print(f"  huge message became an activity: {out.get('huge_activity')}; "
          f"dead letters: {out.get('dead_letters')}; exits: {out.get('exits')}")
    print(json.dumps(out))
    ok = out.get("huge_activity") and all(code == 0 for code in out["exits"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
