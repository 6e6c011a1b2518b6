"""A toy stage with a ``setup`` hook: the handler reports the settings its process was given.

Module level on purpose: with process isolation the worker imports the hook and the handler by
reference.
"""

from __future__ import annotations

from mailroom.records import RawMail
from mailroom.settings import Settings
from mailroom.stage import Context, Outcome, StageSpec, Trace

_given: list[Settings] = []


def remember(settings: Settings) -> None:
    _given.append(settings)


def report(record: RawMail, context: Context) -> Outcome:
    prefixes = ",".join(s.topic_prefix for s in _given)
    return Outcome(traces=[Trace(record.identity, "setup_seen", {"prefixes": prefixes})])


SPEC = StageSpec(name="toy", input_topic="in", handler=report, input_type=RawMail,
                 setup=remember)
