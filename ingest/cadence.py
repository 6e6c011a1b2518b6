"""How often the runner reads what costs it in proportion to the number of mailboxes.

The runner's loop reads the runnable list (every mailbox it serves, with its folders) and the
per-mailbox gauges again and again, to see changes an administrator made. One read costs time
in proportion to the mailboxes: ~0.2 s of CPU (and 1–2 s of wall time on a busy database) for
ten thousand. Read every 2 s whatever the count, that is a cost *per round* growing with the
square of the mailboxes — at ten thousand the loop read the list thirty times in a round and
spent more of the process's time on it than on the passes.

A :class:`Cadence` is due every ``every_s``, or, when its work is slow, no sooner than
``1 / share`` times what the last one took (wall time: what it held up): its work takes no
more than ``share`` of the loop's time, unless that would leave it undone longer than
``most_s``. A few hundred mailboxes are still read every 2 s; ten thousand every half a minute
or so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

SHARE = 0.05  # at most this share of the loop's time goes to one periodic read


class Cadence:
    """A periodic piece of work whose interval stretches with its cost."""

    def __init__(self, every_s: float, share: float = SHARE, most_s: float = float("inf"),
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self.every_s = every_s
        self.share = share
        self.most_s = max(most_s, every_s)  # never longer between two runs than this
        self.clock = clock
        self.last_at: float | None = None  # when the last run started (None: never ran)
        self.took_s = 0.0  # how long the last run took

    @property
    def interval_s(self) -> float:
        """The time between two runs now: ``every_s``, or longer after a slow run (at most
        ``most_s``: what the work reads must not grow too old either)."""
        return min(self.most_s, max(self.every_s, self.took_s / self.share))

    def due(self, now: float | None = None) -> bool:
        if self.last_at is None:
            return True
        return (self.clock() if now is None else now) - self.last_at >= self.interval_s

    def run(self, work: Callable[[], T]) -> T:
        """Do the work now (due or not: a rebalance reads the list at once) and time it."""
        started = self.clock()
        try:
            return work()
        finally:
            self.last_at = started
            self.took_s = max(0.0, self.clock() - started)
