"""Route treats a queue's forward (an Email attributed to the queue by unwrap) as the queue's
mail: the queue accepts it and its rule items make queue items and cases."""

from __future__ import annotations

import dataclasses

from routebuild import config, email, reference

from mailroom.records.steps import CreateOrUpdateCase, CreateQueueItem
from route.plan import plan


def _forwarded_by_queue(queue: str) -> object:
    base = email(mailbox="99", owner="forward:", to=("sales@acme.example",))
    delivery = dataclasses.replace(base.delivery, copy_kind="forwarded_rfc822",
                                   forwarded_by_queue=queue,
                                   forwarder_address="sales@acme.example",
                                   forward_mailbox_id="99")
    return dataclasses.replace(base, delivery=delivery)


def test_route_applies_the_queues_rules_to_its_forwards() -> None:
    cfg = config(queues={"sales": {"rules": [
        {"name": "known customers", "sender": "known", "create_case": True,
         "create_queue_item": True}]}})
    p = plan(_forwarded_by_queue("sales"), reference(), cfg)
    assert p.accepting_owner == "queue:sales"
    (item,) = p.steps_of(CreateQueueItem)
    assert item.queue == "sales"
    (case,) = p.steps_of(CreateOrUpdateCase)
    assert case.queue == "sales" and case.rule_item == "queue:sales rule 1 'known customers'"


def test_without_the_attribution_the_forward_mailbox_owns_nothing() -> None:
    base = email(mailbox="99", owner="forward:", to=("sales@acme.example",))
    p = plan(base, reference(), config())
    assert p.accepting_owner == "" and not p.steps_of(CreateQueueItem)
