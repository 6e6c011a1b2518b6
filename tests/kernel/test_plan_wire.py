"""Typed plan steps and candidates on the plan schema's generic wire form (docs/plans.md).

Plans parked in PostgreSQL are stored as their encoded bytes and read again much later, so a plan
as an older route wrote it — every argument a string in ``params`` — must still read, into the
typed steps; and a typed plan must write that same form.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mailroom.codec import Codec
from mailroom.errors import MalformedRecordError
from mailroom.records import Plan, avro
from mailroom.records.action import STEP_KINDS, Step, step_from_wire, step_to_wire
from mailroom.records.candidates import CANDIDATE_TYPES, InReplyTo, Smart, Token
from mailroom.records.steps import (
    STEP_TYPES,
    AddressUnknown,
    CaseRules,
    CreateContact,
    CreateOrUpdateCase,
    LinkParty,
    UpsertEmailActivity,
)
from mailroom.schemas import shipped_schemas_dir

T = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def codec() -> Codec:
    path = shipped_schemas_dir()
    assert path is not None
    return Codec.load(path)


def _step(kind: str, key: str, params: dict[str, str], condition: Any = None) -> dict[str, Any]:
    return {"kind": kind, "key": key, "condition": condition, "params": params}


# A plan datum exactly as the route of string params wrote it (some keys only sometimes).
OLD_PLAN: dict[str, Any] = {
    "dedupe_key": "r@x", "content_hash": "h", "email": b"", "receiving_mailbox": "mbx-1",
    "accepting_owner": "queue:support", "message_id": "r@x",
    "correlation": [
        {"method": "in_reply_to", "value": "p@x", "params": {}},
        {"method": "token", "value": "123", "params": {}},
        {"method": "smart", "value": "subj", "params": {
            "participants": "a@x,b@x", "min_shared": "2", "customer": "account:c",
            "since": "2026-10-03T09:30:00.000Z", "before": "2026-11-02T09:30:00.000Z"}},
    ],
    "steps": [
        _step("upsert_email_activity", "r@x", {
            "receiving_mailbox": "mbx-1", "accepting_owner": "queue:support",
            "direction": "incoming", "copy_kind": "direct", "sent_at": "2026-11-02T09:30:00.000Z",
            "sender": "a@x", "thread_root": "", "subject_hash": "subj",
            "participants": "a@x,b@x", "customer": "account:c", "automated": "",
            "case_rule": ""}),
        _step("create_contact", "contact|a@x", {"address": "a@x", "name": "Ann", "owner": ""},
              {"kind": "address_unknown", "params": {"address": "a@x"},
               "otherwise": "a@x has a record by now"}),
        _step("link_party", "r@x|to|b@x", {"role": "to", "address": "b@x", "name": "",
                                           "record": "", "outcome": "unknown", "detail": ""}),
        _step("create_or_update_case", "case|r@x", {
            "queue": "support", "rule_item": "queue:support rule 1", "title": "Hi",
            "customer": "", "origin": "r@x"},
              {"kind": "case_rules", "params": {
                  "sender": "a@x", "sent_at": "", "reopen_window_seconds": "1209600",
                  "rate_limit_cases": "3", "rate_limit_window_seconds": "3600"},
               "otherwise": "no case"}),
    ],
    "decisions": [],
}


def test_a_plan_of_string_params_reads_as_typed_steps(codec: Codec) -> None:
    plan = codec.decode_record(codec.encode("plan", OLD_PLAN), Plan)
    assert plan.correlation[:2] == (InReplyTo("p@x"), Token("123"))
    smart = plan.correlation[2]
    assert isinstance(smart, Smart) and smart.participants == ("a@x", "b@x")
    assert smart.min_shared == 2 and smart.before == T
    upsert, contact, link, case = plan.steps
    assert isinstance(upsert, UpsertEmailActivity) and upsert.sent_at == T
    assert upsert.participants == ("a@x", "b@x") and upsert.condition is None
    assert contact == CreateContact(
        key="contact|a@x", condition=AddressUnknown(address="a@x",
                                                    otherwise="a@x has a record by now"),
        address="a@x", name="Ann")
    assert isinstance(link, LinkParty) and link.contact_step == ""  # the key was absent
    assert isinstance(case, CreateOrUpdateCase)
    assert case.condition == CaseRules(sender="a@x", sent_at=None,
                                       reopen_window_seconds=14 * 86400, rate_limit_cases=3,
                                       rate_limit_window_seconds=3600, otherwise="no case")


def test_typed_steps_write_the_same_strings(codec: Codec) -> None:
    plan = codec.decode_record(codec.encode("plan", OLD_PLAN), Plan)
    _, again = codec.decode(codec.encode_record(plan))
    for old, new in zip(OLD_PLAN["steps"], again["steps"], strict=True):
        assert {k: v for k, v in new["params"].items() if v or k in old["params"]} == old["params"]
        assert new["condition"] == old["condition"]
    assert again["correlation"] == OLD_PLAN["correlation"][:2] + [again["correlation"][2]]
    assert again["correlation"][2]["params"] == OLD_PLAN["correlation"][2]["params"]


def test_a_list_item_holding_a_comma_survives_as_json() -> None:
    step = UpsertEmailActivity(key="k", participants=("a,b@x", "c@x"))
    wire = step_to_wire(step)
    assert wire.params["participants"] == '["a,b@x", "c@x"]'
    assert step_from_wire(wire) == step


def test_a_parameter_this_reader_does_not_know_is_ignored() -> None:
    wire = Step("create_queue_item", "q|k", None, {"queue": "q", "added_later": "x"})
    assert step_from_wire(wire).queue == "q"  # type: ignore[union-attr]


def test_broken_plans_are_poison_not_crashes(codec: Codec) -> None:
    missing = {**OLD_PLAN, "steps": [_step("create_queue_item", "q|k", {"rule_item": "r"})]}
    with pytest.raises(MalformedRecordError, match="queue"):
        codec.decode_record(codec.encode("plan", missing), Plan)
    wrong = {**OLD_PLAN, "steps": [_step("set_regarding", "k", {}, {
        "kind": "case_rules", "params": {}, "otherwise": ""})]}
    with pytest.raises(MalformedRecordError, match="condition"):
        codec.decode_record(codec.encode("plan", wrong), Plan)


def test_every_kind_has_a_class_and_the_plan_fits_its_schema(codec: Codec) -> None:
    assert tuple(STEP_TYPES) == STEP_KINDS
    assert set(CANDIDATE_TYPES) == {"in_reply_to", "token", "references", "thread_index",
                                    "smart"}
    assert avro.check_schema(Plan, codec.newest("plan").source) == []
