"""Regenerate ``corpus_manifest.json``: the expected unwrap outcome of every corpus message.

``MAILROOM_CORPUS=path/to/corpus .venv/bin/python tests/unwrap/make_manifest.py``
Review the diff by eye before committing it: the manifest is the test's expectation.
Prints the counts by outcome for ``docs/unwrap.md``.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_outcomes import corpus_files, cpython_email_data, outcome  # noqa: E402

MANIFEST = Path(__file__).resolve().parent / "corpus_manifest.json"


def main() -> None:
    corpus = os.environ.get("MAILROOM_CORPUS")
    if not corpus:
        sys.exit("set MAILROOM_CORPUS to the shared corpus folder")
    files = corpus_files(Path(corpus), cpython_email_data())
    manifest = {key: outcome(path.read_bytes()) for key, path in files.items()}
    MANIFEST.write_text(json.dumps(manifest, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    for mode in ("user", "forward"):
        counts = Counter(
            f"rejection {e[mode]['rejection']}" if "rejection" in e[mode]
            else f"{e[mode]['emails']} email(s)" for e in manifest.values())
        print(mode, dict(sorted(counts.items())))
    reports = Counter(e["user"].get("report", "-") for e in manifest.values())
    print("reports", dict(sorted(reports.items())))
    print(f"{len(manifest)} files -> {MANIFEST}")


if __name__ == "__main__":
    main()
