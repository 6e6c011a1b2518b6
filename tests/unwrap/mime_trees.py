"""Compare two parsed message trees field by field: the fast parser's against the stdlib's."""

from __future__ import annotations

import email.parser
from email import policy
from email.message import Message

STDLIB = email.parser.BytesParser(policy=policy.compat32)


def _defects(msg: Message) -> list[tuple[type, object]]:
    return [(type(defect), getattr(defect, "line", None)) for defect in msg.defects]


def tree_difference(got: Message, want: Message, path: str = "root") -> str | None:
    """The first difference between two trees, as ``path: what``; None when they are equal.

    Paths name parts by index from the root (``root/1/0`` is the first part of the second).
    """
    checks: list[tuple[str, object, object]] = [
        ("class", type(got), type(want)),
        ("policy", got.policy, want.policy),
        ("unixfrom", got.get_unixfrom(), want.get_unixfrom()),
        ("headers", got._headers, want._headers),  # noqa: SLF001 - names and raw values exactly
        ("default type", got.get_default_type(), want.get_default_type()),
        ("preamble", got.preamble, want.preamble),
        ("epilogue", got.epilogue, want.epilogue),
        ("defects", _defects(got), _defects(want)),
        ("charset", got._charset, want._charset),  # noqa: SLF001
    ]
    for what, mine, theirs in checks:
        if mine != theirs:
            return f"{path}: {what} {_short(mine)} != {_short(theirs)}"
    mine_payload, their_payload = got._payload, want._payload  # noqa: SLF001
    if isinstance(mine_payload, list) and isinstance(their_payload, list):
        if len(mine_payload) != len(their_payload):
            return f"{path}: {len(mine_payload)} parts != {len(their_payload)}"
        pairs = zip(mine_payload, their_payload, strict=True)
        for index, (mine_part, their_part) in enumerate(pairs):
            found = tree_difference(mine_part, their_part, f"{path}/{index}")
            if found is not None:
                return found
        return None
    if type(mine_payload) is not type(their_payload) or mine_payload != their_payload:
        return f"{path}: payload {_short(mine_payload)} != {_short(their_payload)}"
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."
