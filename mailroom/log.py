"""One way to log: ``key=value`` lines on stderr, configured once at process start."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks secrets in the whole line, traceback included."""

    def __init__(self, fmt: str, datefmt: str, redact: Callable[[str], str]) -> None:
        super().__init__(fmt, datefmt)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def configure(level: str = "INFO", stage: str = "",
              redact: Callable[[str], str] | None = None) -> None:
    """Configure the root logger for a Mailroom process. Call once, from the CLI entry point.

    ``redact`` (a :class:`mailroom.redact.Redactor`) masks secrets in every line."""
    from mailroom.redact import Redactor

    prefix = f"stage={stage} " if stage else ""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter(
            f"%(asctime)s level=%(levelname)s {prefix}logger=%(name)s %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S%z", redact=redact or Redactor(),
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Kafka clients are chatty at INFO; their warnings still show. imaplib's protocol trace
    # (imapclient routes it to its own logger) holds whole messages: not in the logs even at
    # DEBUG, and ingest does not format it at all then (ingest.connect).
    for noisy in ("kafka", "aiokafka", "faust", "mode", "imapclient.imaplib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # kafka-python 3 warns whenever one of its I/O tasks takes over 0.1 s, which a busy
    # 2-core machine does all the time; its real errors still show.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)


def get(name: str) -> logging.Logger:
    return logging.getLogger(name)
