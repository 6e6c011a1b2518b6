"""Route's builder table makes every step kind but skip (made where the filter rejects)."""

from __future__ import annotations

from mailroom.records.steps import STEP_TYPES, Skip
from route.plan import BUILDERS


def test_one_builder_per_step_kind_in_the_order_persist_applies_them() -> None:
    built = [kind for kind, _ in BUILDERS]
    assert built == [s for s in STEP_TYPES.values() if s is not Skip]
