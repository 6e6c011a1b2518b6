"""What the stage runner spends around each record on the worker pipe, in CPU (not wall).

    .venv/bin/python bench/stage_pipe.py [--mails 600] [--rounds 3] [--workers 2]

No broker, no database: the realistic mix of ``bench/mailgen.py`` (the large messages left
out), unwrapped by the pure function into Email records, planned by route's pure function with
the unit tests' reference data. Two parts:

1. Each step of a record's trip, alone, in one process (CPU µs per record, best of the rounds):
   the Avro decode, the handler, the Avro encode of its outputs, and the pipe both ways (the
   chunk of Contexts pickled to the worker and unpickled there, each Verdict pickled back and
   unpickled) as it was, the dataclasses pickled, and as it is (``mailroom.stage.wire``).
2. The same records through the executors the runner uses, in slices of the runner's size: the
   worker pool (``ProcessExecutor``) against the handler inline (``InlineExecutor``) — CPU of
   this process and of the pool's children together, per record — for unwrap's and route's
   handler and a trivial one (decodes the input, returns nothing): what the pool costs a record.
"""

from __future__ import annotations

import argparse
import importlib
import pickle
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]
sys.path.append(str(_HERE.parent / "tests" / "route"))

import psutil  # noqa: E402

from bench import mailgen  # noqa: E402
from mailroom.codec import Codec  # noqa: E402
from mailroom.records.email import Email  # noqa: E402
from mailroom.records.raw import RawMail  # noqa: E402
from mailroom.settings import Settings  # noqa: E402
from mailroom.stage import wire  # noqa: E402
from mailroom.stage.budget import InlineExecutor  # noqa: E402
from mailroom.stage.execute import StageSpec, execute  # noqa: E402
from mailroom.stage.types import Context, Outcome, Output, Source, Verdict  # noqa: E402
from mailroom.stage.workers import ProcessExecutor  # noqa: E402

SCHEMAS = _HERE.parent / "schemas"
SLICE = 128  # the runner's slice (mailroom.stage.runner.SLICE)
CHUNK = 32  # the pool's chunk (mailroom.stage.workers.MAX_CHUNK)
PROTOCOL = pickle.HIGHEST_PROTOCOL
HEADERS = (("mailroom-arrived-ms", b"1764700000000"),)


def _unwrap_context() -> Any:
    from unwrap.context import UnwrapContext

    return UnwrapContext(
        forwarders={"fm": {f"{u}@{mailgen.DOMAIN}": f"u-{u}" for u in mailgen.FORWARDERS}},
        authserv_id=mailgen.AUTHSERV_ID, non_forwarded="accept")


class UnwrapPure:
    """Unwrap's pure function packaged as the stage packages it (outputs encoded, a trace each)."""

    def __init__(self, settings: Settings) -> None:
        from unwrap.stage import _trace

        self.codec = Codec.load(SCHEMAS)
        self.context = _unwrap_context()
        self.trace = _trace

    def __call__(self, raw: RawMail, context: Context) -> Outcome:
        from unwrap.unwrap import unwrap

        emails = unwrap(raw, self.context)
        assert isinstance(emails, list), emails
        return Outcome(
            outputs=tuple(Output("unwrapped", e.dedupe_key, e, self.codec.encode_record(e))
                          for e in emails),
            traces=tuple(self.trace(raw, e, n, len(emails)) for n, e in enumerate(emails, 1)))


class RoutePure:
    """Route's pure function with the unit tests' reference data, packaged as the stage does."""

    def __init__(self, settings: Settings) -> None:
        from routebuild import config, reference

        self.reference, self.config = reference(), config(correlation={"smart": True})

    def __call__(self, email: Email, context: Context) -> Outcome:
        from route.plan import plan
        from route.stage import to_outcome

        return to_outcome(plan(email, self.reference, self.config, context.source.value or b""))


def trivial(settings: Settings) -> Callable[[Any, Context], Outcome]:
    return lambda record, context: Outcome()


SPECS = {
    "unwrap": StageSpec("unwrap", "raw", UnwrapPure, input_type=RawMail),
    "route": StageSpec("route", "unwrapped", RoutePure, input_type=Email),
    "trivial (Email in)": StageSpec("trivial", "unwrapped", trivial, input_type=Email),
}


def spec_of(name: str) -> StageSpec:
    """The spec from this file imported as ``bench.stage_pipe``, not as ``__main__``: the pool
    pickles the handler's class by reference, and a worker child has no such ``__main__``."""
    return importlib.import_module("bench.stage_pipe").SPECS[name]


def records(n: int, codec: Codec) -> dict[str, list[bytes]]:
    """The encoded RawMail and Email records of ``n`` messages of the realistic mix."""
    maker = mailgen.MailMaker("realistic", mailgen.DEFAULT_SIZE, "pipe")
    handler = UnwrapPure(Settings())
    raws: list[bytes] = []
    emails: list[bytes] = []
    i = 0
    while len(raws) < n:
        mail = maker.make(i)
        i += 1
        if mail.kind == "large":
            continue
        forward = mail.mailbox == mailgen.FORWARD_LOCAL
        raw = RawMail(mailbox_id="fm" if forward else mail.mailbox,
                      mailbox_address=f"{mail.mailbox}@{mailgen.DOMAIN}",
                      owner_kind="forward" if forward else "user",  # type: ignore[arg-type]
                      folder="INBOX", direction="incoming", protocol="imap",
                      fetched_at=datetime.now(UTC), size=len(mail.data), uidvalidity=1,
                      uid=i, content=mail.data)
        raws.append(codec.encode_record(raw))
        emails += [o.encoded for o in handler(raw, _context("raw", raws[-1], 0)).outputs
                   if o.encoded is not None]
    return {"unwrap": raws, "route": emails[:n], "trivial (Email in)": emails[:n]}


def _context(topic: str, value: bytes, offset: int) -> Context:
    return Context("bench", Source(topic, 0, offset, b"k%d" % offset, value,
                                   1764700000000 + offset, HEADERS))


def _cpu(step: Callable[[], object], count: int, rounds: int) -> float:
    """Best CPU µs per record of ``step`` (which handles ``count`` records) over ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        step()
        best = min(best, (time.process_time() - began) / count * 1e6)
    return best


def steps(name: str, values: list[bytes], rounds: int) -> dict[str, float]:
    codec = Codec.load(SCHEMAS)
    spec = spec_of(name)
    handler = spec.make_handler(Settings())
    contexts = [_context(spec.input_topic, v, i) for i, v in enumerate(values)]
    decoded = [codec.decode_record(v, spec.input_type) for v in values]
    outcomes = [handler(r, c) for r, c in zip(decoded, contexts, strict=True)]
    verdicts = [execute(spec, handler, codec, c) for c in contexts]
    chunks = [contexts[i:i + CHUNK] for i in range(0, len(contexts), CHUNK)]

    def dataclasses_pickled() -> None:
        # What crossed the pipe before mailroom.stage.wire: the dataclasses themselves.
        for chunk in chunks:
            pickle.loads(pickle.dumps(chunk, PROTOCOL))
        for verdict in verdicts:
            pickle.loads(pickle.dumps(verdict, PROTOCOL))

    def tuples_pickled() -> None:
        for chunk in chunks:
            wire.contexts_of(pickle.loads(wire.dump_chunk(chunk)))
        for verdict in verdicts:  # one a message, as a chunk's are sent together
            wire.load_verdicts(wire.dump_verdicts([wire.verdict_fields(verdict)]))

    n = len(values)
    figures = {
        "Avro decode": _cpu(lambda: [codec.decode_record(v, spec.input_type) for v in values],
                            n, rounds),
        "handler (outputs encoded for unwrap)": _cpu(
            lambda: [handler(r, c) for r, c in zip(decoded, contexts, strict=True)], n, rounds),
        "Avro encode of the outputs": _cpu(
            lambda: [codec.encode_record(o.record) for oc in outcomes for o in oc.outputs
                     if o.encoded is None], n, rounds),
        "execute() whole (decode, handler, encode)": _cpu(
            lambda: [execute(spec, handler, codec, c) for c in contexts], n, rounds),
    }
    # The two ways over the pipe (pickled, unpickled, both directions), alternated.
    old: list[float] = []
    now: list[float] = []
    for _ in range(rounds):
        old.append(_cpu(dataclasses_pickled, n, 1))
        now.append(_cpu(tuples_pickled, n, 1))
    figures["pipe both ways: the dataclasses pickled"] = min(old)
    figures["pipe both ways: wire tuples (mailroom.stage.wire)"] = min(now)
    return figures


def _tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds of ``proc`` and its children, every thread, from the scheduler's
    nanosecond counts (``/proc/PID/task/TID/schedstat``): the 10 ms ticks of ``cpu_times``
    would hide what a pipe costs a record."""
    total = 0
    for p in (proc, *proc.children(recursive=True)):
        tasks = Path(f"/proc/{p.pid}/task")
        try:
            for task in tasks.iterdir():
                total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1e9


def executors(name: str, values: list[bytes], rounds: int, workers: int) -> dict[str, float]:
    """CPU µs per record, this process and its children, through each executor."""
    settings = Settings(stage_budget_ms=60_000)
    codec = Codec.load(SCHEMAS)
    spec = spec_of(name)
    contexts = [_context(spec.input_topic, v, i) for i, v in enumerate(values)]
    me = psutil.Process()
    out: dict[str, float] = {}
    for label, make in (("inline", lambda: InlineExecutor(spec, codec, settings)),
                        ("pool", lambda: ProcessExecutor(spec, settings, workers))):
        executor = make()
        try:
            executor.run_batch(contexts[:CHUNK * workers])  # start-up and warm-up
            best = float("inf")
            for _ in range(rounds):
                began = _tree_cpu(me)
                for i in range(0, len(contexts), SLICE):
                    answers = executor.run_batch(contexts[i:i + SLICE])
                    assert all(isinstance(a, Verdict) and a.kind == "ok" for a in answers), \
                        answers
                best = min(best, (_tree_cpu(me) - began) / len(contexts) * 1e6)
            out[label] = best
        finally:
            executor.close()
    out["pool − inline"] = out["pool"] - out["inline"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=sorted(SPECS), action="append")
    args = parser.parse_args()
    codec = Codec.load(SCHEMAS)
    made = records(args.mails, codec)
    print(f"{args.mails} records each; load {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")
    for name in args.only or SPECS:
        values = made[name]
        size = sum(map(len, values)) / len(values)
        print(f"\n{name}: input {size / 1024:.1f} KB a record (mean); CPU µs per record")
        if not name.startswith("trivial"):
            for step, us in steps(name, values, args.rounds).items():
                print(f"  {step:45s} {us:8.1f}")
        for label, us in executors(name, values, args.rounds, args.workers).items():
            print(f"  {'executor ' + label:45s} {us:8.1f}")
    print(f"\nload {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
