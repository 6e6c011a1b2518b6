"""One way to log: ``key=value`` lines on stderr, configured once at process start."""

from __future__ import annotations

import logging
import sys


def configure(level: str = "INFO", stage: str = "") -> None:
    """Configure the root logger for a Mailroom process. Call once, from the CLI entry point."""
    prefix = f"stage={stage} " if stage else ""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s level=%(levelname)s {prefix}logger=%(name)s %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Kafka clients are chatty at INFO; their warnings still show.
    for noisy in ("kafka", "aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # kafka-python 3 warns whenever one of its I/O tasks takes over 0.1 s, which a busy
    # 2-core machine does all the time; its real errors still show.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)


def get(name: str) -> logging.Logger:
    return logging.getLogger(name)
