"""A stage runner on a background thread, for the runner's tests: stopped as SIGTERM stops it
(the batch in hand finished and committed, the group left)."""

from __future__ import annotations

import threading

from stage_toy import SPEC

from mailroom.settings import Settings
from mailroom.stage.run import build_runner
from mailroom.stage.runner import StageRunner


class RunnerThread:
    """``runner.run()`` on a thread; :meth:`of` builds the toy stage's runner."""

    def __init__(self, runner: StageRunner) -> None:
        self.runner = runner
        self.exit: list[int] = []
        self.thread = threading.Thread(target=lambda: self.exit.append(runner.run()))
        self.thread.start()

    @classmethod
    def of(cls, settings: Settings) -> RunnerThread:
        return cls(build_runner(SPEC, settings))

    def stop(self, timeout_s: float = 60) -> int:
        """Stop, wait for ``run`` to return, close what the test's runner opened; its exit."""
        self.runner.stop()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive()
        self.runner.producer.close()
        self.runner.attempts.conn.close()
        return self.exit[0]
