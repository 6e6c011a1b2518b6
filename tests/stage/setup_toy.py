"""A toy stage whose handler reports the settings its process made it with.

Module level on purpose: with process isolation the worker imports ``make_handler`` by reference.
"""

from __future__ import annotations

from mailroom.records import RawMail
from mailroom.settings import Settings
from mailroom.stage import Context, Handler, Outcome, StageSpec, Trace

_made: list[Settings] = []  # every Settings a handler of this process was made with


def make_handler(settings: Settings) -> Handler:
    _made.append(settings)

    def report(record: RawMail, context: Context) -> Outcome:
        prefixes = ",".join(s.topic_prefix for s in _made)
        return Outcome(traces=[Trace(record.identity, "setup_seen", {"prefixes": prefixes})])

    return report


SPEC = StageSpec(name="toy", input_topic="in", make_handler=make_handler, input_type=RawMail)
