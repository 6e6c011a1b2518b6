"""Auto-replies and delivery notices unwrap could not classify: tracked as configured, but never
a case, a contact, or a bounce of anything — whatever their sender claims to be."""

from __future__ import annotations

import pytest
from routebuild import config, email, reference

from mailroom.records.email import Markers, Report
from mailroom.records.steps import (
    CreateContact,
    CreateOrUpdateCase,
    MarkDeliveryFailed,
    UpsertEmailActivity,
)
from route.plan import plan

CONTACTS = {"owners": {"queue:support": "all"}, "create_contacts": {"queue:support": True}}


@pytest.mark.parametrize(("kw", "rule"), [
    ({"report": Report("auto_reply", "subject 'Automatic reply:'"),
      "sender": "new@person.example"}, "autoreply.auto_reply"),
    ({"sender": "postmaster@mx.example"}, "autoreply.mailer_daemon"),
    ({"sender": "new@person.example", "markers": Markers(return_path="<>")},
     "autoreply.null_sender"),
    ({"sender": "new@person.example", "markers": Markers(return_path=" < > ")},
     "autoreply.null_sender"),
])
def test_no_case_no_contact(kw: dict, rule: str) -> None:
    p = plan(email(subject="urgent", **kw), reference(), config(track=CONTACTS))
    assert rule in [d.rule for d in p.decisions]
    assert not p.steps_of(CreateOrUpdateCase)
    assert not p.steps_of(CreateContact)
    assert not p.steps_of(MarkDeliveryFailed)
    (activity,) = p.steps_of(UpsertEmailActivity)  # still tracked as configured
    assert activity.automated


def test_an_ordinary_return_path_is_a_person() -> None:
    p = plan(email(subject="urgent", sender="new@person.example",
                   markers=Markers(return_path="<new@person.example>")),
             reference(), config(track=CONTACTS))
    assert p.steps_of(CreateContact)
    assert p.steps_of(CreateOrUpdateCase)
