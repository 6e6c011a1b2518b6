"""Unit tests of the pure window arithmetic (no broker)."""

from __future__ import annotations

import pytest

from mailroom.errors import ConfigError
from mailroom.stats import windows as w

H = 3_600_000
T0 = 1_717_408_800_000  # 2024-06-03 10:00 UTC, an hour boundary


def test_parse_windows() -> None:
    assert w.parse_windows("1h, 1d") == (w.Window("1h", H), w.Window("1d", 24 * H))
    assert w.parse_windows("15m")[0].size_ms == 15 * 60_000
    for bad in ("", "1x", "0h", "1h,1h", "h"):
        with pytest.raises(ConfigError):
            w.parse_windows(bad)


def test_window_start_aligns_to_the_epoch() -> None:
    hour = w.Window("1h", H)
    assert hour.start(T0) == T0
    assert hour.start(T0 + H - 1) == T0
    assert hour.start(T0 + H) == T0 + H


def test_email_keys_lower_case_and_no_sender() -> None:
    assert w.email_keys("Sales@Example.com", "Bob@Ext.org") == [
        "mailbox|sales@example.com", "sender|bob@ext.org"]
    assert w.email_keys("q@example.com", None) == ["mailbox|q@example.com"]


def test_add_counts_per_window_and_prunes_the_oldest() -> None:
    windows = w.parse_windows("1h,1d")
    v: w.Volume = {}
    for at in (T0, T0 + 1, T0 + H, T0 + 2 * H, T0 + 3 * H):
        v = w.add(v, windows, at, keep=3)
    assert v["1h"] == {str(T0 + H): 1, str(T0 + 2 * H): 1, str(T0 + 3 * H): 1}  # T0 pruned
    assert sum(v["1d"].values()) == 5


def test_current_and_top() -> None:
    windows = w.parse_windows("1h")
    vols = {
        "mailbox|a@x": w.add(w.add({}, windows, T0, 5), windows, T0 + H, 5),
        "sender|s1@y": w.add(w.add({}, windows, T0 + H, 5), windows, T0 + H + 1, 5),
        "sender|s2@y": w.add({}, windows, T0 + H, 5),
    }
    now = w.newest_ms(vols.values())
    assert now == T0 + H
    counts = w.current(vols, windows, now)
    assert [(c.dimension, c.value, c.messages) for c in counts] == [
        ("mailbox", "a@x", 1), ("sender", "s1@y", 2), ("sender", "s2@y", 1)]
    assert [c.value for c in w.top(counts, "sender", "1h", 1)] == ["s1@y"]
