"""The one reader of mail header dates every stage uses."""

from __future__ import annotations

from datetime import UTC, datetime

from mailroom.maildate import parse_date


def test_a_zoned_date_is_the_same_instant_in_utc() -> None:
    assert parse_date("Mon, 04 May 2026 12:00:01 +0200") == datetime(2026, 5, 4, 10, 0, 1,
                                                                      tzinfo=UTC)


def test_no_zone_is_read_as_utc_not_this_machines_zone() -> None:
    assert parse_date("Mon, 04 May 2026 10:00:01") == datetime(2026, 5, 4, 10, 0, 1, tzinfo=UTC)
    assert parse_date("Mon, 04 May 2026 10:00:01 -0000") == datetime(2026, 5, 4, 10, 0, 1,
                                                                     tzinfo=UTC)


def test_what_cannot_be_an_instant_is_none() -> None:
    for value in ("", "garbage", "Mon, 04 May 2026 10:00:01 +9999999999999999999",
                  "Mon, 31 Dec 9999 23:59:59 -2359"):
        assert parse_date(value) is None, value
