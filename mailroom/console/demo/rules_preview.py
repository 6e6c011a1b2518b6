"""The demo's rules preview: what a candidate rules file would change, before anyone loads it.

Run once the demo's mail is processed, through the same command an administrator types
(``mailroom rules preview FILE --since 1d --json``): the candidate
(:data:`~mailroom.console.demo.scenario.CANDIDATE_RULES_TOML`) is written into the demo's state
folder, the stored ``unwrapped`` records are planned with the rules in force and with it, and the
differences are summarised — one line per kind of change, with its first example. Nothing is
loaded and no offset moves, so the summary's figures stay what the scenario fixes.
"""

from __future__ import annotations

import json
from pathlib import Path

from mailroom.console.demo import seed
from mailroom.console.demo.scenario import CANDIDATE_RULES_TOML
from mailroom.settings import Settings

#: The window replayed: the demo's topics are recreated on every run, so this is all of its mail.
SINCE = "1d"
#: What the candidate changes, as the demo's output says it.
CHANGE = ("Bob tracks mail from known customers, not only replies; the sales queue opens a case "
          "for known customers")


def candidate_file(settings: Settings) -> Path:
    return settings.state_path / "demo" / settings.topic_prefix / "candidate-rules.toml"


def run(settings: Settings) -> dict[str, object]:
    """The preview's report as ``rules preview --json`` prints it."""
    path = candidate_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CANDIDATE_RULES_TOML)
    out = seed.command(settings, ["rules", "preview", str(path), "--since", SINCE, "--json"])
    return dict(json.loads(out))


def render(report: dict[str, object]) -> list[str]:
    """A short section: totals, then per kind of change its count and first example."""
    counts: dict[str, int] = dict(report.get("counts") or {})  # type: ignore[call-overload]
    examples: dict[str, list[dict[str, str]]] = dict(
        report.get("examples") or {})  # type: ignore[call-overload]
    lines = [
        f"  rules preview (mailroom rules preview {report.get('file', '')} --since {SINCE}; "
        "nothing loaded):",
        f"    candidate: {CHANGE}",
        f"    {report['emails']} emails replayed from unwrapped: {report['changed']} planned "
        f"differently, {report['unchanged']} the same",
    ]
    for kind, n in counts.items():
        first = (examples.get(kind) or [{}])[0]
        example = (f" — {first['subject']!r} from {first['sender']}: {first['before']} -> "
                   f"{first['after']}") if first else ""
        lines.append(f"    {kind.replace('_', ' ')}: {n}{example}")
    if not counts:
        lines.append("    (no change)")
    return lines


def show(settings: Settings) -> list[str]:
    return render(run(settings))
