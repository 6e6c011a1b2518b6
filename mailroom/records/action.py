"""Plan: route's declarative, possibly conditional steps for one copy of one email (``actions``).

The vocabulary (step kinds, condition kinds, candidate methods, every argument) is specified in
``docs/plans.md``; persist implements its evaluator from that page. In short:

* a step (one class per kind, :mod:`mailroom.records.steps`) names what to do, the natural key
  of the record it creates or touches (``key``: applying it twice changes nothing) and its
  typed arguments;
* a step with a condition is applied only when persist, inside its transaction, finds the
  condition true against the stored state and the email's own timestamps — never the wall
  clock, so a replay decides the same way;
* ``correlation`` is the ordered list of candidate threads the email may belong to (one class
  per method, :mod:`mailroom.records.candidates`); conditions of kind ``correlates`` and
  ``case_rules`` read it;
* ``decisions`` is the decision trace: every question route asked, its answer and why.

On the wire the plan schema keeps steps, conditions and candidates generic — a kind and a map of
string ``params`` (:class:`Step`, :class:`Condition`, :class:`Candidate` here) — so plans parked
long ago still read; the conversion is registered once with the Avro mapping below and written
once, in :mod:`mailroom.records.params`.

The email itself travels as ``email``: the Email record's single-object encoding exactly as
route read it from ``mailroom.unwrapped``, so the plan never re-encodes it and the Email schema
evolves on its own (persist decodes it with the codec, by its fingerprint).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from mailroom.records import avro
from mailroom.records.avro import AvroMapped
from mailroom.records.base import check_choice, set_field
from mailroom.records.candidates import CANDIDATE_TYPES, AnyCandidate
from mailroom.records.params import ParamsMapping
from mailroom.records.steps import CONDITION_TYPES, STEP_TYPES, AnyCondition, AnyStep, Skip

#: Step kinds, in the order persist applies them within a plan (route emits them in this order).
STEP_KINDS: tuple[str, ...] = tuple(STEP_TYPES)

CONDITION_KINDS: frozenset[str] = frozenset(CONDITION_TYPES)

CANDIDATE_METHODS: frozenset[str] = frozenset(CANDIDATE_TYPES)

S = TypeVar("S")


def _str_map(value: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True, slots=True)
class Condition:
    """The schema's generic condition record: the wire form of the typed conditions."""

    kind: str  # one of CONDITION_KINDS
    params: Mapping[str, str] = field(default_factory=dict)
    otherwise: str = ""  # readable reason recorded when the condition is false

    def __post_init__(self) -> None:
        check_choice("condition kind", self.kind, CONDITION_KINDS)
        set_field(self, "params", _str_map(self.params))


@dataclass(frozen=True, slots=True)
class Step:
    """The schema's generic step record: the wire form of the typed steps."""

    kind: str  # one of STEP_KINDS
    key: str  # natural key of the record the step creates or touches
    condition: Condition | None = None  # None: unconditional
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("step kind", self.kind, STEP_KINDS)
        set_field(self, "params", _str_map(self.params))


@dataclass(frozen=True, slots=True)
class Candidate:
    """The schema's generic candidate record: the wire form of the typed candidates."""

    method: str  # one of CANDIDATE_METHODS
    value: str  # a normalised Message-ID, a token number, a Thread-Index root, a subject hash
    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("candidate method", self.method, CANDIDATE_METHODS)
        set_field(self, "params", _str_map(self.params))


# --- typed parts <-> wire records (built once per class) ---------------------------------------

_CONDITION_PARAMS = {
    c: ParamsMapping(c, frozenset({"otherwise"})) for c in CONDITION_TYPES.values()
}
_STEP_PARAMS = {s: ParamsMapping(s, frozenset({"key", "condition"})) for s in STEP_TYPES.values()}
_CANDIDATE_PARAMS = {
    c: ParamsMapping(c, frozenset({"value"})) for c in CANDIDATE_TYPES.values()
}


def _allowed_conditions(step: type) -> tuple[tuple[type, ...], bool] | None:
    """(condition classes the step takes, whether it may have none); None: no condition."""
    hint = typing.get_type_hints(step).get("condition")
    if hint is None:
        return None
    args = typing.get_args(hint) or (hint,)
    return tuple(a for a in args if a is not type(None)), type(None) in args


_STEP_CONDITIONS = {s: _allowed_conditions(s) for s in STEP_TYPES.values()}


def _condition_datum(condition: AnyCondition | None) -> dict[str, Any] | None:
    if condition is None:
        return None
    return {"kind": condition.kind, "otherwise": condition.otherwise,
            "params": _CONDITION_PARAMS[type(condition)].to_params(condition)}


def step_datum(step: AnyStep) -> dict[str, Any]:
    """The step as the schema's ``Step`` record."""
    return {"kind": step.kind, "key": step.key,
            "condition": _condition_datum(getattr(step, "condition", None)),
            "params": _STEP_PARAMS[type(step)].to_params(step)}


def step_of_datum(datum: Mapping[str, Any]) -> AnyStep:
    """The typed step of a ``Step`` record; ValueError when the record makes no such step."""
    kind, condition = datum["kind"], datum.get("condition")
    cls = STEP_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"step kind must be one of {list(STEP_KINDS)}, got {kind!r}")
    allowed = _STEP_CONDITIONS[cls]
    if allowed is None:
        if condition is not None:
            raise ValueError(f"a {kind} step takes no condition, got {condition['kind']!r}")
        return _STEP_PARAMS[cls].make(datum.get("params", {}), key=datum["key"])
    types_, optional = allowed
    typed = None
    if condition is not None:
        ccls = CONDITION_TYPES.get(condition["kind"])
        if ccls is None or ccls not in types_:
            raise ValueError(f"a {kind} step cannot have the condition {condition['kind']!r}")
        typed = _CONDITION_PARAMS[ccls].make(condition.get("params", {}),
                                             otherwise=condition.get("otherwise", ""))
    elif not optional:
        raise ValueError(f"a {kind} step needs a condition")
    return _STEP_PARAMS[cls].make(datum.get("params", {}), key=datum["key"], condition=typed)


def candidate_datum(candidate: AnyCandidate) -> dict[str, Any]:
    """The candidate as the schema's ``Candidate`` record."""
    return {"method": candidate.method, "value": candidate.value,
            "params": _CANDIDATE_PARAMS[type(candidate)].to_params(candidate)}


def candidate_of_datum(datum: Mapping[str, Any]) -> AnyCandidate:
    cls = CANDIDATE_TYPES.get(datum["method"])
    if cls is None:
        raise ValueError(f"candidate method must be one of {sorted(CANDIDATE_METHODS)}, "
                         f"got {datum['method']!r}")
    return _CANDIDATE_PARAMS[cls].make(datum.get("params", {}), value=datum["value"])


def step_to_wire(step: AnyStep) -> Step:
    """The step as a generic :class:`Step` (for readers of the wire form)."""
    d = step_datum(step)
    return Step(d["kind"], d["key"], None if d["condition"] is None else Condition(
        **d["condition"]), d["params"])


def step_from_wire(wire: Step) -> AnyStep:
    return step_of_datum({
        "kind": wire.kind, "key": wire.key, "params": wire.params,
        "condition": None if wire.condition is None else {
            "kind": wire.condition.kind, "params": wire.condition.params,
            "otherwise": wire.condition.otherwise},
    })


def candidate_from_wire(wire: Candidate) -> AnyCandidate:
    return candidate_of_datum({"method": wire.method, "value": wire.value,
                               "params": wire.params})


avro.register_wire(AnyStep, Step, step_datum, step_of_datum)
avro.register_wire(AnyCandidate, Candidate, candidate_datum, candidate_of_datum)


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
    correlation: Sequence[AnyCandidate] = ()
    steps: Sequence[AnyStep] = ()
    decisions: Sequence[Decision] = ()

    def __post_init__(self) -> None:
        # The generic wire forms are accepted too (and converted here, once).
        set_field(self, "correlation", tuple(
            candidate_from_wire(c) if isinstance(c, Candidate) else c for c in self.correlation))
        set_field(self, "steps", tuple(
            step_from_wire(s) if isinstance(s, Step) else s for s in self.steps))
        set_field(self, "decisions", tuple(self.decisions))

    @property
    def skipped(self) -> bool:
        return any(isinstance(step, Skip) for step in self.steps)

    def steps_of(self, kind: type[S]) -> list[S]:
        return [step for step in self.steps if isinstance(step, kind)]
