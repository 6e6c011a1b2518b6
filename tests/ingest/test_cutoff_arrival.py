"""POP3 has no arrival date: it is read from the headers ``TOP n 0`` returns."""

from __future__ import annotations

from datetime import UTC, datetime

from ingest.cutoff import Skip, arrival_from_headers, reason, too_early

T = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)


def test_the_topmost_received_stamp_wins_over_older_ones_and_the_date() -> None:
    head = (b"Received: from a by pop.example.com;\r\n Mon, 04 May 2026 10:00:01 +0000\r\n"
            b"Received: from b by relay.example; Mon, 04 May 2026 09:00:00 +0000\r\n"
            b"Date: Sun, 03 May 2026 08:00:00 +0000\r\nSubject: x\r\n\r\nbody")
    assert arrival_from_headers(head) == (datetime(2026, 5, 4, 10, 0, 1, tzinfo=UTC),
                                          "Received header")


def test_without_a_readable_received_the_date_header_counts() -> None:
    head = b"Received: garbled\r\nDate: Mon, 04 May 2026 11:00:00 +0200\r\n\r\n"
    assert arrival_from_headers(head) == (datetime(2026, 5, 4, 9, 0, tzinfo=UTC), "Date header")


def test_nothing_readable_is_processed() -> None:
    arrived, how = arrival_from_headers(b"Subject: no dates\r\n\r\n")
    assert (arrived, how) == (None, "")
    assert not too_early(arrived, T)
    assert too_early(datetime(2026, 5, 4, 9, 59, 59, tzinfo=UTC), T)
    assert not too_early(T, T) and not too_early(T, None)
    text = reason(Skip("1/pop3/u", "INBOX", datetime(2026, 5, 4, 9, 59, 59, tzinfo=UTC),
                       "Date header"), T)
    assert "arrived 2026-05-04T09:59:59+00:00 (Date header)" in text


def test_a_stamp_with_an_absurd_zone_offset_is_unreadable_not_a_crash() -> None:
    # parsedate_to_datetime raised OverflowError here: one such header ended the POP3 session
    head = (b"Received: from a by pop.example.com; Mon, 04 May 2026 10:00:01 "
            b"+9999999999999999999\r\nDate: Mon, 04 May 2026 10:00:00 -0000\r\n\r\n")
    assert arrival_from_headers(head) == (datetime(2026, 5, 4, 10, 0, tzinfo=UTC), "Date header")
