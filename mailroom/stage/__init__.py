"""Stream stages: the pure-handler contract and the runner every stream stage uses.

A stage provides a :class:`StageSpec` (name, input topic, input record type, handler); the
runner in :mod:`mailroom.stage.runner` does everything else the same way for every stage —
attempt counting, budgets, retries, dead letters, trace events, flush-then-commit, SIGTERM.
``docs/stream-runner.md`` describes the semantics.
"""

from mailroom.stage.execute import StageSpec, execute, group_id
from mailroom.stage.types import (
    CRASH,
    CRASH_LOOP,
    REJECTED,
    RETRY_EXHAUSTED,
    TIMEOUT,
    UNDECODABLE,
    Context,
    Handler,
    Outcome,
    Output,
    Rejection,
    Source,
    Trace,
    Verdict,
)

__all__ = [
    "CRASH",
    "CRASH_LOOP",
    "REJECTED",
    "RETRY_EXHAUSTED",
    "TIMEOUT",
    "UNDECODABLE",
    "Context",
    "Handler",
    "Outcome",
    "Output",
    "Rejection",
    "Source",
    "StageSpec",
    "Trace",
    "Verdict",
    "execute",
    "group_id",
]
