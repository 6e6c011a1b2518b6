"""Unwrap and route in one step: ``mailroom run unwrap+route`` reads ``raw`` and writes ``actions``.

Why: on a small host every hop between two stages costs what the work does. An unwrapped Email
is encoded, produced, stored by the broker, fetched, decoded and built again before route spends
~0.3 ms deciding about it, and route's process pays its own poll, pipe and trace records around
that. Here the unwrap handler's Email goes straight to route's handler, in the same worker, with
the bytes unwrap already encoded (route's plan carries them, as it carries what it reads from the
topic). Measured side by side: ``bench/e2e.py --fused``.

What stays the same: the consumer group is unwrap's, so a deployment can switch between the two
ways at any time (the offsets of ``raw`` carry over; ``unwrapped`` simply stops growing while
this runs, and route's group has nothing new to read). Both stages' trace events are written,
each under its own stage name, so ``mailroom trace`` shows the same steps (route's event points
at the raw record it came from, not at an ``unwrapped`` one). Every guarantee is the runner's:
budget, crash isolation, retries, dead letters, attempts. What is given up: scaling unwrap and
route apart, and replaying route alone from ``unwrapped`` for what this process handled (replay
``raw`` through this stage instead: ``mailroom replay unwrap``).

A record is handled whole or not at all: a route failure (its reference data away: a retry; a
bug: a dead letter) is the raw record's, so nothing is half done.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping

from mailroom.records.mailbox import MailboxRecord
from mailroom.records.raw import RawMail
from mailroom.settings import Settings
from mailroom.stage.execute import StageSpec
from mailroom.stage.types import Context, Outcome, Output, Rejection, Source, Trace
from route.stage import RouteHandler
from unwrap.stage import STAGE as UNWRAP
from unwrap.stage import UnwrapHandler

#: Route's name on the trace events it decides here (its own stage's name).
ROUTE = "route"


class UnwrapRouteHandler:
    """Unwrap's handler, then route's on each Email it makes; one per handling process."""

    def __init__(self, settings: Settings) -> None:
        self.unwrap = UnwrapHandler(settings)
        self.route = RouteHandler(settings)

    def use_mailboxes(self, mailboxes: Mapping[str, MailboxRecord]) -> None:
        self.unwrap.use_mailboxes(mailboxes)
        self.route.use_mailboxes(mailboxes)

    def __call__(self, raw: RawMail, context: Context) -> Outcome | Rejection:
        answer = self.unwrap(raw, context)
        if isinstance(answer, Rejection):
            return answer
        outputs: list[Output] = []
        traces: list[Trace] = list(answer.traces)
        for out in answer.outputs:
            if out.topic != "unwrapped":
                outputs.append(out)
                continue
            encoded = out.encoded if out.encoded is not None else (
                self.unwrap.edges.codec.encode_record(out.record))
            routed = self.route(out.record, as_routed(context, out.key, encoded))
            outputs += routed.outputs
            traces += (_as_route(t) for t in routed.traces)
        return Outcome(outputs=tuple(outputs), traces=tuple(traces))


def as_routed(context: Context, key: str, encoded: bytes) -> Context:
    """The Context route would have had reading an Email from ``unwrapped``: its key and bytes,
    the raw record's time and place (there is no ``unwrapped`` record to point at)."""
    src = context.source
    return Context(
        stage=ROUTE, attempt=context.attempt,
        source=Source(src.topic, src.partition, src.offset, key.encode("utf-8"),
                      encoded, src.timestamp, src.headers),
    )


def _as_route(trace: Trace) -> Trace:
    return trace if trace.stage else dataclasses.replace(trace, stage=ROUTE)


SPEC = StageSpec(name=UNWRAP, input_topic="raw", make_handler=UnwrapRouteHandler,
                 input_type=RawMail, reads_mailboxes=True)


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Entry of ``mailroom run unwrap+route``."""
    from mailroom.stage.run import run_stage

    return run_stage(SPEC, settings)
