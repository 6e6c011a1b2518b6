"""Pure window arithmetic: which counters one email moves, and how a counter's value changes.

A counter is keyed by a *dimension key* — ``mailbox|<mailbox address>``, ``sender|<from
address>`` or ``undecodable|`` — and its value is a small dict of recent tumbling windows::

    {"1h": {"1717408800000": 12, "1717412400000": 3}, "1d": {"1717372800000": 15}}

(window start in ms since the epoch → messages). All windows of one key live in one value, so
one update rewrites one changelog record and old windows are pruned as the key moves on: a
key keeps at most ``keep`` windows per size. No wall clock is read anywhere here: windows are
placed by the message's arrival time, so a replay puts every message in the same window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mailroom.errors import ConfigError

MAILBOX = "mailbox"
SENDER = "sender"
UNDECODABLE = "undecodable"
DIMENSIONS = (MAILBOX, SENDER, UNDECODABLE)

_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_WINDOW = re.compile(r"^(\d+)([smhd])$")

Volume = dict[str, dict[str, int]]  # window name → window start (ms, as text) → messages


@dataclass(frozen=True)
class Window:
    name: str  # as configured, e.g. "1h"; the label in metrics and on the dashboard
    size_ms: int

    def start(self, at_ms: int) -> int:
        """Start of the tumbling window that holds ``at_ms`` (windows align to the epoch, UTC)."""
        return at_ms - at_ms % self.size_ms


def parse_windows(spec: str) -> tuple[Window, ...]:
    """``"1h,1d"`` → windows; sizes are a number and one of s, m, h, d."""
    windows = []
    for part in (p.strip() for p in spec.split(",")):
        match = _WINDOW.match(part)
        if not match or int(match.group(1)) == 0:
            raise ConfigError(
                f"stats_windows: {part!r} is not a window size like 15m, 1h or 1d"
            )
        windows.append(Window(part, int(match.group(1)) * _UNITS_MS[match.group(2)]))
    if not windows:
        raise ConfigError("stats_windows: name at least one window size")
    if len({w.name for w in windows}) != len(windows):
        raise ConfigError(f"stats_windows: {spec!r} names a window twice")
    return tuple(windows)


def dimension_key(dimension: str, value: str) -> str:
    return f"{dimension}|{value}"


def split_key(key: str) -> tuple[str, str]:
    dimension, _, value = key.partition("|")
    return dimension, value


def email_keys(mailbox_address: str, from_address: str | None) -> list[str]:
    """The counters one email moves: its receiving mailbox and, when it has one, its sender.

    Addresses are compared case-insensitively (unwrap lower-cases only the domain part).
    A copy of one email received by two mailboxes counts once per mailbox and twice for its
    sender: this is the volume arriving, not the number of distinct emails.
    """
    keys = [dimension_key(MAILBOX, mailbox_address.lower())]
    if from_address:
        keys.append(dimension_key(SENDER, from_address.lower()))
    return keys


def add(volume: Mapping[str, Mapping[str, int]], windows: Iterable[Window], at_ms: int,
        keep: int) -> Volume:
    """``volume`` with one message at ``at_ms`` added to each window size, keeping the newest
    ``keep`` windows per size (a late message for a window already pruned is not counted)."""
    out: Volume = {name: dict(starts) for name, starts in volume.items()}
    for window in windows:
        starts = out.setdefault(window.name, {})
        start = str(window.start(at_ms))
        starts[start] = starts.get(start, 0) + 1
        if len(starts) > keep:
            newest = sorted(starts, key=int)[-keep:]
            out[window.name] = {s: starts[s] for s in newest if s in starts}
    return out


@dataclass(frozen=True)
class Count:
    dimension: str
    value: str  # a mailbox or sender address ("" for undecodable)
    window: str
    start_ms: int
    messages: int


def current(volumes: Mapping[str, Mapping[str, Mapping[str, int]]], windows: Iterable[Window],
            now_ms: int) -> list[Count]:
    """Per key and window size, the count of the window holding ``now_ms`` (event time: the
    newest arrival seen), biggest first. Keys with nothing in that window are left out."""
    out = []
    for window in windows:
        start = window.start(now_ms)
        for key, volume in volumes.items():
            messages = volume.get(window.name, {}).get(str(start), 0)
            if messages:
                dimension, value = split_key(key)
                out.append(Count(dimension, value, window.name, start, messages))
    out.sort(key=lambda c: (c.window, c.dimension, -c.messages, c.value))
    return out


def newest_ms(volumes: Iterable[Mapping[str, Mapping[str, int]]]) -> int:
    """Start of the newest window seen in any volume (0: none); the event-time 'now'."""
    return max((int(s) for v in volumes for starts in v.values() for s in starts), default=0)


def top(counts: Iterable[Count], dimension: str, window: str, n: int) -> list[Count]:
    """The ``n`` biggest counts of one dimension and window size (``current`` sorts them)."""
    return [c for c in counts if c.dimension == dimension and c.window == window][:n]
