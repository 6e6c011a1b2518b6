"""What a stage runner tells the outside world: the health endpoints and metrics read it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class StageStatus:
    """What the runner tells the outside world (the metrics and health server reads it).

    ``ready``: joined and consuming; ``alive``: the loop turned recently (``last_loop``);
    ``paused``: partitions stopped at an unreadable record, with the reason; ``degraded``: why
    the stage cannot work now (PostgreSQL away), empty when it can.
    """

    ready: bool = False
    degraded: str = ""
    stopping: bool = False
    last_loop: float = field(default_factory=time.monotonic)
    paused: dict[tuple[str, int], str] = field(default_factory=dict)
    records_in: int = 0
    records_out: int = 0
    dead_lettered: int = 0
    retried: int = 0
    batches: int = 0
    # Of the last batch only (reset when one starts), for the metrics hook: handler time per
    # record, and when each main-input record's message arrived in Mailroom (ms).
    processing_seconds: list[float] = field(default_factory=list)
    arrivals_ms: list[int] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.paused and not self.degraded
