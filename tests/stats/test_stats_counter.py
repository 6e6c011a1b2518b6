"""Counting each source record once per counter (mailroom.stats.counter), without a broker."""

from __future__ import annotations

from mailroom.stats import counter
from mailroom.stats import windows as w

WINDOWS = w.parse_windows("1h")
H = 3_600_000


def test_a_redelivered_or_resent_event_is_not_counted_twice() -> None:
    value = counter.apply(None, (0, 5), 0, WINDOWS, 48)
    assert value == {"windows": {"1h": {"0": 1}}, "counted": {"0": 5}}
    assert counter.apply(value, (0, 5), 0, WINDOWS, 48) is None  # the same record again
    assert counter.apply(value, (0, 3), 0, WINDOWS, 48) is None  # an earlier one: counted
    value = counter.apply(value, (1, 2), H, WINDOWS, 48)  # another source partition
    value = counter.apply(value, (0, 6), H, WINDOWS, 48)
    assert value == {"windows": {"1h": {"0": 1, str(H): 2}}, "counted": {"0": 6, "1": 2}}
    assert counter.volume_of(value) == {"1h": {"0": 1, str(H): 2}}


def test_values_and_events_from_before_source_coordinates_still_count() -> None:
    legacy = {"1h": {"0": 4}}  # a changelog value that was only the windows
    assert counter.volume_of(legacy) == legacy
    value = counter.apply(legacy, None, 0, WINDOWS, 48)  # an event without "src"
    assert value == {"windows": {"1h": {"0": 5}}, "counted": {}}
    assert counter.volume_of(None) == {}
