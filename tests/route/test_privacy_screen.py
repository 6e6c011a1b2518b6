"""Privacy before every other question: erased mail, mail marked private, never-track lists —
skipped with the reason and ids only, nothing of the content in the plan or its trace."""

from __future__ import annotations

import dataclasses

from routebuild import config, email, reference

from mailroom import erasure
from mailroom.codec import Codec
from mailroom.records.action import Plan
from mailroom.records.email import Markers
from mailroom.records.steps import Skip, UpsertEmailActivity
from mailroom.settings import Settings
from route.plan import plan
from route.privacy import Exclusion, Privacy
from route.stage import to_outcome

TRACK_ALL = config(track={"default": "all"})


def _reference(**privacy: object):
    return dataclasses.replace(reference(), privacy=Privacy(**privacy))  # type: ignore[arg-type]


def _alice(**kw: object):
    kw.setdefault("message_id", "m1@mail.example")  # ids may show; the parties may not
    return email(mailbox="11", owner="user:alice", to=("alice@acme.example",),
                 subject="My diagnosis", body="The results are in.", **kw)


def _content_free(p: Plan) -> None:
    assert [s.kind for s in p.steps] == ["skip"]
    assert p.email == b"" and not p.correlation
    trace = to_outcome(p).traces[0]
    text = repr((p.decisions, p.steps, trace.detail))
    for secret in ("diagnosis", "results", "ann@customer.example", "customer.example"):
        assert secret not in text.lower(), secret


def test_never_track_of_the_receiving_user_skips_without_content() -> None:
    entry = Exclusion(7, "user:alice", "address", "ann@customer.example")
    p = plan(_alice(), _reference(exclusions={"user:alice": (entry,)}), TRACK_ALL)
    _content_free(p)
    skip = p.steps_of(Skip)[0]
    assert skip.rule == "privacy.never-track"
    assert "entry 7 (address) of the never-track list of user:alice" in skip.reason


def test_another_users_list_does_not_apply_the_organisations_does() -> None:
    bob_only = {"user:bob": (Exclusion(1, "user:bob", "domain", "customer.example"),)}
    assert not plan(_alice(), _reference(exclusions=bob_only), TRACK_ALL).skipped
    org = {"organisation": (Exclusion(2, "organisation", "domain", "example"),)}
    p = plan(_alice(), _reference(exclusions=org), TRACK_ALL)
    _content_free(p)  # a domain covers its subdomains


def test_any_address_counts_cc_and_outgoing_too() -> None:
    entry = {"organisation": (Exclusion(3, "organisation", "address", "dr@clinic.example"),)}
    cc = _alice(cc=("dr@clinic.example",))
    assert plan(cc, _reference(exclusions=entry), TRACK_ALL).skipped
    out = email(mailbox="11", owner="user:alice", sender="alice@acme.example",
                to=("DR@clinic.example",), direction="outgoing")
    assert plan(out, _reference(exclusions=entry), TRACK_ALL).skipped
    near = {"organisation": (Exclusion(4, "organisation", "domain", "linic.example"),)}
    assert not plan(cc, _reference(exclusions=near), TRACK_ALL).skipped


def test_forwarded_copy_is_judged_by_the_forwarding_users_list() -> None:
    entry = {"user:bob": (Exclusion(5, "user:bob", "address", "ann@customer.example"),)}
    fwd = email(mailbox="20", owner="user:nobody", forwarded_by="bob")
    assert plan(fwd, _reference(exclusions=entry), TRACK_ALL).skipped


def test_sensitivity_private_and_confidential_unless_turned_off() -> None:
    for value in ("Private", "confidential", "Company-Confidential"):
        p = plan(_alice(markers=Markers(sensitivity=value)), _reference(), TRACK_ALL)
        _content_free(p)
        assert p.steps_of(Skip)[0].rule == "privacy.sensitivity"
    personal = _alice(markers=Markers(sensitivity="Personal"))
    assert not plan(personal, _reference(), TRACK_ALL).skipped
    private = _alice(markers=Markers(sensitivity="Private"))
    p = plan(private, _reference(honour_sensitivity=False), TRACK_ALL)
    assert p.steps_of(UpsertEmailActivity)


def test_erased_message_id_or_address_is_skipped() -> None:
    by_id = frozenset({erasure.id_digest("m1@mail.example")})
    p = plan(_alice(), _reference(erased=by_id), TRACK_ALL)
    _content_free(p)
    assert p.steps_of(Skip)[0].rule == "privacy.erased"
    by_address = frozenset({erasure.address_digest("ANN@customer.example")})
    assert plan(_alice(message_id="other@x.example"), _reference(erased=by_address),
                TRACK_ALL).skipped
    assert not plan(_alice(message_id="other@x.example"), _reference(erased=by_id),
                    TRACK_ALL).steps_of(Skip)


def test_the_skip_plan_round_trips_through_avro(isolated_settings: Settings) -> None:
    codec = Codec.from_settings(isolated_settings)
    p = plan(_alice(markers=Markers(sensitivity="Private")), _reference(), TRACK_ALL)
    back = codec.decode_record(codec.encode_record(p), Plan)
    assert back.skipped and back.email == b"" and back.message_id == "m1@mail.example"
