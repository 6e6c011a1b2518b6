"""Array literals (mailroom.db.arrays) read back by PostgreSQL as the values they were made of."""

from __future__ import annotations

import random

import psycopg
import pytest

from mailroom.db import connect
from mailroom.db.arrays import bool_array, int_array, text_array

pytestmark = pytest.mark.integration  # needs the local stack's PostgreSQL

AWKWARD = ["", "NULL", "null", " ", "a,b", "{x}", '"quoted"', "back\\slash", "\\\"", "ünï €",
           "tab\tnew\nline", "}", "{", "a b ", "'", "\\N", "💌", None]


def _random_text(rng: random.Random) -> str:
    alphabet = 'ab ,{}"\\\'NUL\t\nü€💌'
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def test_text_arrays_come_back_as_they_were(base_settings) -> None:
    rng = random.Random(7)
    lists = [AWKWARD, [], [None], [""], *([_random_text(rng) for _ in range(rng.randint(1, 6))]
                                          for _ in range(300))]
    with connect(base_settings) as conn:
        for values in lists:
            [(back,)] = conn.execute("SELECT %s::text[]", (text_array(values),)).fetchall()
            assert back == values, values
            # What psycopg's own list dump gives, the same.
            assert back == conn.execute("SELECT %s::text[]", (values,)).fetchone()[0]


def test_numbers_and_booleans_come_back_as_they_were(base_settings) -> None:
    with connect(base_settings) as conn:
        ints = [0, -1, 2**62, None, 7]
        assert conn.execute("SELECT %s::bigint[]", (int_array(ints),)).fetchone()[0] == ints
        assert conn.execute("SELECT %s::integer[]", (int_array([3, None]),)).fetchone()[0] == \
            [3, None]
        flags = [True, False, None]
        assert conn.execute("SELECT %s::boolean[]", (bool_array(flags),)).fetchone()[0] == flags


def test_a_nul_is_refused_as_psycopg_refuses_it(base_settings) -> None:
    with connect(base_settings) as conn, pytest.raises(psycopg.DataError):
        conn.execute("SELECT %s::text[]", (text_array(["a\x00b"]),))
