"""The demo's erasure: the unknown sender who wrote to support asks to be forgotten.

Run after the summary's figures are taken (they stay what the scenario fixes), through the same
code as ``mailroom erase --address``: what it removes, and the audit record it leaves.
"""

from __future__ import annotations

from mailroom.codec import Codec
from mailroom.console.ops.erase import Selector, execute
from mailroom.db import connect
from mailroom.settings import Settings

#: The scenario's unknown sender to support ("Do you ship to Norway?"): a contact was created.
ADDRESS = "lars@example.net"


def show(settings: Settings) -> list[str]:
    with connect(settings) as conn:
        audit, found = execute(conn, Codec.from_settings(settings), Selector.address(ADDRESS),
                               "demo")
    removed = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in found.summary().items()
                        if n)
    return [f"  erasure (mailroom erase --address {ADDRESS} --execute): removed {removed}; "
            f"audit record {audit}; replays will not bring it back"]
