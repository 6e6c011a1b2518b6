"""Queue and case rules: per queue, ordered rule items whose first match wins.

A rule item's conditions (sender known/unknown, subject and body patterns, a recipient address)
all have to hold; its actions are "create case" and/or "create queue item". Whether a case is
really created depends on other emails — a reply correlated to an active case updates that case,
a reply shortly after a case was resolved reopens it, and a sender over the rate limit opens no
new case — so the case step is conditional (``case_rules``) and persist decides, in the emails'
own time. One case per message: the case's natural key is the originating email's dedupe key.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.records.email import Email
from route.config import RouteConfig, RuleItem
from route.mail import recipients
from route.parties import Resolution


@dataclass(frozen=True)
class Fired:
    queue_id: str
    index: int
    item: RuleItem

    @property
    def label(self) -> str:
        return f"queue:{self.queue_id} rule {self.index + 1} '{self.item.name}'"


def matches(item: RuleItem, email: Email, sender: Resolution | None) -> str | None:
    """None when the item applies, else the first condition that does not hold."""
    known = sender is not None and sender.outcome != "unknown"
    if item.sender == "known" and not known:
        return "sender is not known"
    if item.sender == "unknown" and known:
        return "sender is known"
    if item.subject is not None and not item.subject.search(email.subject or ""):
        return f"subject does not match /{item.subject.pattern}/"
    if item.body is not None and not item.body.search(email.text_body or email.html_body or ""):
        return f"body does not match /{item.body.pattern}/"
    if item.recipient is not None and item.recipient not in recipients(email):
        return f"{item.recipient} is not a recipient"
    return None


def first_match(
    queue_id: str, email: Email, sender: Resolution | None, config: RouteConfig
) -> tuple[Fired | None, list[str]]:
    """The rule item that fires for this queue, and why each earlier one did not."""
    misses: list[str] = []
    for index, item in enumerate(config.queue_rules.get(queue_id, ())):
        miss = matches(item, email, sender)
        if miss is None:
            return Fired(queue_id, index, item), misses
        misses.append(f"rule {index + 1} '{item.name}': {miss}")
    return None, misses
