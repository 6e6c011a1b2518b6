"""What a chaos or cluster test needs of the machine before it seeds anything: the local
stack's PostgreSQL answering, and root (seeding writes the local Dovecot's Maildir as its mail
user). Tests only: it skips through pytest, which the benches do not need.
"""

from __future__ import annotations

import os

import pytest

from mailroom.db import connect
from mailroom.settings import Settings


def skip_unless_seedable(settings: Settings) -> None:
    """Skip the calling test, saying why, when the local stack cannot be seeded from here."""
    try:
        connect(settings).close()
    except Exception:  # noqa: BLE001 - any failure means: no local stack here
        pytest.skip("PostgreSQL of the local stack is not reachable (mailroom stack up)")
    if os.geteuid() != 0:
        pytest.skip("seeding writes the local Dovecot's Maildir as its mail user: needs root")
