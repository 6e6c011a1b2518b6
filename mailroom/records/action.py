"""Plan: route's declarative, possibly conditional steps for one copy of one email (``actions``).

The vocabulary (step kinds, condition kinds, candidate methods, every parameter) is specified
in ``docs/plans.md``; persist implements its evaluator from that page. In short:

* a :class:`Step` names what to do (``kind``), the natural key of the record it creates or
  touches (``key``: applying it twice changes nothing) and string ``params``;
* a step with a :class:`Condition` is applied only when persist, inside its transaction, finds
  the condition true against the stored state and the email's own timestamps — never the wall
  clock, so a replay decides the same way;
* ``correlation`` is the ordered list of :class:`Candidate` threads the email may belong to;
  conditions of kind ``correlates`` and ``case_rules`` read it;
* ``decisions`` is the decision trace: every question route asked, its answer and why.

The email itself travels as ``email``: the Email record's single-object encoding exactly as
route read it from ``mailroom.unwrapped``, so the plan never re-encodes it and the Email schema
evolves on its own (persist decodes it with the codec, by its fingerprint).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from mailroom.records.avro import AvroMapped
from mailroom.records.base import check_choice, set_field

#: Step kinds, in the order persist applies them within a plan (route emits them in this order).
STEP_KINDS: tuple[str, ...] = (
    "skip",
    "upsert_email_activity",
    "create_contact",
    "link_party",
    "set_regarding",
    "mark_delivery_failed",
    "create_or_update_case",
    "create_queue_item",
)

CONDITION_KINDS: frozenset[str] = frozenset(
    {"correlates", "address_unknown", "original_tracked", "case_rules"}
)

CANDIDATE_METHODS: frozenset[str] = frozenset(
    {"in_reply_to", "token", "references", "thread_index", "smart"}
)


def _str_map(value: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True, slots=True)
class Condition:
    kind: str  # one of CONDITION_KINDS
    params: Mapping[str, str] = field(default_factory=dict)
    otherwise: str = ""  # readable reason recorded when the condition is false

    def __post_init__(self) -> None:
        check_choice("condition kind", self.kind, CONDITION_KINDS)
        set_field(self, "params", _str_map(self.params))


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # one of STEP_KINDS
    key: str  # natural key of the record the step creates or touches
    condition: Condition | None = None  # None: unconditional
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("step kind", self.kind, STEP_KINDS)
        set_field(self, "params", _str_map(self.params))


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way the email may belong to a stored thread; the first that resolves wins."""

    method: str  # one of CANDIDATE_METHODS
    value: str  # a normalised Message-ID, a token number, a Thread-Index root, a subject hash
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("candidate method", self.method, CANDIDATE_METHODS)
        set_field(self, "params", _str_map(self.params))


@dataclass(frozen=True, slots=True)
class Decision:
    """One line of the decision trace: which rule was asked, what it answered, and why."""

    rule: str  # e.g. "filter", "autoreply.precedence", "correlation", "queue_rule"
    outcome: str  # e.g. "accepted", "skip", "matched", "fired"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Plan(AvroMapped):
    SCHEMA: ClassVar[str] = "plan"

    dedupe_key: str  # the Kafka key: all plans of one email stay in order
    content_hash: str  # with the dedupe key, tells a copy from a collision
    email: bytes  # the Email record's single-object encoding, as read from unwrapped
    receiving_mailbox: str = ""
    accepting_owner: str = ""  # "user:ID" / "queue:ID" whose filter accepted; "" when skipped
    message_id: str | None = None
    correlation: Sequence[Candidate] = ()
    steps: Sequence[Step] = ()
    decisions: Sequence[Decision] = ()

    def __post_init__(self) -> None:
        set_field(self, "correlation", tuple(self.correlation))
        set_field(self, "steps", tuple(self.steps))
        set_field(self, "decisions", tuple(self.decisions))

    @property
    def skipped(self) -> bool:
        return any(step.kind == "skip" for step in self.steps)

    def steps_of(self, kind: str) -> list[Step]:
        return [step for step in self.steps if step.kind == kind]
