"""Stream stages: the pure-handler contract and the runner every stream stage uses.

A stage provides a :class:`StageSpec` (name, input topic, input record type, handler) — or,
when it handles whole batches (persist), a :class:`BatchSpec` with an executor and a commit
strategy of its own (:mod:`mailroom.stage.commit`); the runner in :mod:`mailroom.stage.runner`
does everything else the same way for every stage — attempt counting, budgets, retries, dead
letters, trace events, acknowledge-then-commit, liveness, outages, SIGTERM.
``docs/stream-runner.md`` describes the semantics.
"""

from mailroom.stage.execute import BatchSpec, StageSpec, execute, group_id
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
    "BatchSpec",
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
