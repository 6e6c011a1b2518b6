"""What ``mailroom run unwrap`` runs with ``route_in_unwrap = true``: each Email unwrap makes goes
straight to route's handler in the same worker, and unwrap writes the plans to ``actions`` itself.
Here, in the command line's layer, because stages never import one another: only the command
that starts a process may put two stages' handlers in it.

Why: on a small host every hop between two stages costs what the work does. Route spends
~0.3 ms deciding about an Email, but its process pays a poll, the Email's decode and rebuild,
the pipe to its worker, its own trace records and a produce around that. Here route's handler
gets the Email object unwrap just made and the bytes unwrap already encoded (route's plan
carries them, as it carries what it reads from the topic). Measured side by side:
``bench/e2e.py --ways split,fused``.

What stays the same: unwrap still writes each Email to ``unwrapped`` (the stats stage counts
them; it is the record of what unwrap made), and its consumer group is unwrap's, so a deployment
switches ways by restarting unwrap with the setting and stopping route (whose group then has
nothing new to read). Both stages' trace events are written, each under its own stage name, so
``mailroom trace`` shows the same steps (route's event points at the raw record it came from).
Every guarantee is the runner's: budget, crash isolation, retries, dead letters, attempts. What
is given up: scaling unwrap and route apart, and replaying route alone (replay unwrap instead).

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
    """Unwrap's handler, then route's on each Email it makes (both kept: the Email for
    ``unwrapped``, its plan for ``actions``); one per handling process."""

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
            outputs.append(out)
            if out.topic != "unwrapped":
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


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Entry of ``mailroom run unwrap`` when route decides inside it."""
    from mailroom.stage.run import run_stage

    return run_stage(spec(), settings)


def spec() -> StageSpec:
    """Unwrap's stage with route's handler after its own (unwrap's name, group and input)."""
    return StageSpec(name=UNWRAP, input_topic="raw", make_handler=UnwrapRouteHandler,
                     input_type=RawMail, reads_mailboxes=True)
