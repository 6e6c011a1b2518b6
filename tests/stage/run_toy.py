"""Run the toy stage as its own process (crash and SIGTERM tests): settings from MAILROOM_*."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stage_toy import SPEC  # noqa: E402

from mailroom import log, settings  # noqa: E402
from mailroom.stage.run import run_stage  # noqa: E402

if __name__ == "__main__":
    current = settings.load()
    log.configure(current.log_level, stage="toy")
    sys.exit(run_stage(SPEC, current))
