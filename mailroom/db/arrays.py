"""PostgreSQL arrays as their text literal (``{"a","b"}``), for a parameter cast in the statement
(``%s::text[]``).

psycopg turns a Python list into an array parameter in Python, element by element through the
element's dumper (``ListDumper``): persist passes a batch's child rows as one array per column
(``unnest``), and those dumps were a tenth of persist's CPU (py-spy ``--gil`` during
``bench/e2e.py``). A literal is one ``str.join`` over the values, and psycopg sends it as one
string. What PostgreSQL stores is the same (``tests/db/test_arrays.py`` reads every kind of value
back); a NUL in a text value is refused as it was (``DataError``: text cannot hold one).
"""

from __future__ import annotations

from collections.abc import Iterable


def _element(value: str | None) -> str:
    if value is None:
        return "NULL"
    # Quoted, so commas, braces, blanks and the word NULL are plain characters; inside the
    # quotes only the backslash and the double quote are escaped.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_array(values: Iterable[str | None]) -> str:
    """The literal of a ``text[]`` (None: a NULL element)."""
    return "{" + ",".join(map(_element, values)) + "}"


def int_array(values: Iterable[int | None]) -> str:
    """The literal of an ``integer[]`` or ``bigint[]``."""
    return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"


def bool_array(values: Iterable[bool | None]) -> str:
    """The literal of a ``boolean[]``."""
    return "{" + ",".join("NULL" if v is None else ("t" if v else "f") for v in values) + "}"


#: The literal builder for each element type a statement casts to.
LITERAL = {"text": text_array, "bigint": int_array, "integer": int_array, "boolean": bool_array}
