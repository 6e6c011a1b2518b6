"""What the corpus tests and ``make_manifest.py`` share: which files, and their outcome."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unwrap_helpers import FORWARD_MAILBOX, context, raw

from unwrap.context import Rejection
from unwrap.unwrap import unwrap

SKIP_NAMES = {"LICENSE", "README.md"}


def cpython_email_data() -> Path | None:
    try:
        import test  # the interpreter's own test package, when installed
    except ImportError:
        return None
    path = Path(os.path.dirname(test.__file__)) / "test_email" / "data"
    return path if path.is_dir() else None


def corpus_files(corpus: Path | None, cpython: Path | None) -> dict[str, Path]:
    """Manifest key -> file: ``corpus/<relative>`` and ``cpython/<name>``."""
    files: dict[str, Path] = {}
    for prefix, root in (("corpus", corpus), ("cpython", cpython)):
        if root is None:
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name not in SKIP_NAMES:
                files[f"{prefix}/{path.relative_to(root).as_posix()}"] = path
    return files


def outcome(data: bytes) -> dict[str, Any]:
    """The expected-outcome entry of one file: as user mail and as forward-mailbox input."""
    as_user = unwrap(raw(data), context())
    as_forward = unwrap(raw(data, kind="forward", mailbox=FORWARD_MAILBOX), context())
    entry: dict[str, Any] = {}
    if isinstance(as_user, Rejection):
        entry["user"] = {"rejection": as_user.reason_code}
    else:
        entry["user"] = {
            "emails": len(as_user),
            "dedupe_key": as_user[0].dedupe_key,
            "subject": as_user[0].subject[:80],
            "report": as_user[0].report.kind,
            "attachments": len(as_user[0].attachments),
        }
    if isinstance(as_forward, Rejection):
        entry["forward"] = {"rejection": as_forward.reason_code}
    else:
        entry["forward"] = {"emails": len(as_forward),
                            "dedupe_keys": [e.dedupe_key for e in as_forward]}
    return entry
