"""The attempt counter's SQL on the real PostgreSQL: the sequences a crashing stage goes through."""

from __future__ import annotations

import pytest

from mailroom.attempts import AttemptLog, Standing, Start
from mailroom.db import connect
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def test_batch_death_then_lone_deaths_then_clean(stage_settings: Settings) -> None:
    with connect(stage_settings, autocommit=True) as conn:
        log = AttemptLog(conn, "g")

        def begin(first: int, last: int) -> Standing:
            return log.begin([Start("t", 0, first, last)])[("t", 0)]

        assert begin(100, 599) == Standing(1, -1)  # happy path
        assert begin(600, 999) == Standing(1, -1)  # committed: a new start resets
        # Died somewhere in 600..999: same start again -> suspect, but no record blamed yet.
        assert begin(600, 1099) == Standing(1, 999)
        assert begin(601, 601) == Standing(1, 999)  # 600 went through alone; next one
        assert begin(601, 1099) == Standing(2, 999)  # 601 killed it alone: counts
        assert begin(601, 1099) == Standing(3, 999)
        assert begin(602, 602) == Standing(1, 999)  # 601 dead-lettered; go on carefully
        assert begin(1000, 1500) == Standing(1, -1)  # past the suspect range: batches again
        assert log.standing("t", 0) == Standing(1, -1)
        assert log.standing("t", 1) is None


def test_release_takes_back_a_start(stage_settings: Settings) -> None:
    with connect(stage_settings, autocommit=True) as conn:
        log = AttemptLog(conn, "g")
        log.begin([Start("t", 0, 5, 5)])
        log.release("t", 0, 5)  # paused before offset 5: not a crash
        assert log.begin([Start("t", 0, 5, 5)]) == {("t", 0): Standing(1, -1)}


def test_one_statement_for_many_partitions(stage_settings: Settings) -> None:
    with connect(stage_settings, autocommit=True) as conn:
        log = AttemptLog(conn, "g")
        starts = [Start("t", p, 10 * p, 10 * p + 9) for p in range(6)]
        assert log.begin(starts) == {("t", p): Standing(1, -1) for p in range(6)}
        with pytest.raises(ValueError):
            AttemptLog(connect(stage_settings), "g")
