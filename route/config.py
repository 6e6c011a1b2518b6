"""RouteConfig: track filters, correlation switches, token format, queue rules and case rules.

The truth lives in PostgreSQL (``route/store.py``); ``mailroom rules load FILE`` reads a TOML file
through :func:`from_document`, which validates everything and names the offending key in its
error, before a single row is written. Defaults follow the reference CRM: only replies to
tracked mail are tracked, smart matching is off, nobody gets contacts created automatically.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from mailroom.errors import ConfigError
from route.reference import RecordRef
from route.tokens import TokenFormat


class TrackFilter(StrEnum):
    ALL = "all"  # every email
    REPLIES = "replies"  # only replies to tracked mail (a condition persist evaluates)
    KNOWN = "known"  # from (or, when outgoing, to) a known contact, account or lead
    EMAIL_ENABLED = "email_enabled"  # from any email-enabled record, users and queues too
    NONE = "none"  # nothing


@dataclass(frozen=True)
class CorrelationSwitches:
    in_reply_to: bool = True
    token: bool = True
    references: bool = True
    thread_index: bool = True
    smart: bool = False  # subject hash + shared participants: off by default, as in the CRM
    smart_min_participants: int = 2
    smart_lookback_days: int = 30


@dataclass(frozen=True)
class RuleItem:
    """One item of a queue's ordered rule list: all given conditions must hold; first wins."""

    name: str
    sender: str = "any"  # any | known | unknown
    subject: re.Pattern[str] | None = None
    body: re.Pattern[str] | None = None
    recipient: str | None = None  # lower-cased address that must be in To or Cc
    create_case: bool = True
    create_queue_item: bool = True


@dataclass(frozen=True)
class CaseSettings:
    reopen_window_days: int = 30  # a reply this long after the case was resolved reopens it
    rate_limit_cases: int = 0  # at most this many new cases per sender per window; 0: no limit
    rate_limit_window_hours: int = 24


@dataclass(frozen=True)
class PartySettings:
    max_matches: int = 1  # more records than this for one address: leave it unresolved


@dataclass(frozen=True)
class RouteConfig:
    default_filter: TrackFilter = TrackFilter.REPLIES
    filters: Mapping[str, TrackFilter] = field(default_factory=dict)  # "user:ID" → filter
    create_contacts: Mapping[str, bool] = field(default_factory=dict)  # "user:ID" → policy
    correlation: CorrelationSwitches = CorrelationSwitches()
    #: overrides by scope: "mailbox:ID", "queue:ID" or "user:ID" (mailbox beats owner)
    correlation_scopes: Mapping[str, CorrelationSwitches] = field(default_factory=dict)
    token: TokenFormat = TokenFormat()
    queue_rules: Mapping[str, tuple[RuleItem, ...]] = field(default_factory=dict)  # queue id
    cases: CaseSettings = CaseSettings()
    parties: PartySettings = PartySettings()

    def filter_for(self, owner: RecordRef) -> TrackFilter:
        return self.filters.get(str(owner), self.default_filter)

    def switches_for(self, mailbox_id: str, owner: RecordRef | None) -> CorrelationSwitches:
        for scope in (f"mailbox:{mailbox_id}", str(owner) if owner else ""):
            if scope in self.correlation_scopes:
                return self.correlation_scopes[scope]
        return self.correlation


# --- validation of the TOML document ----------------------------------------------------------


def _table(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}{key}: expected a table, got {type(value).__name__}")
    return value


def _check_keys(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})"
        )


def _typed(value: Any, kind: type, key: str) -> Any:
    # bool is an int in Python; a TOML `true` where a number belongs is still a mistake
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {kind.__name__}, got {value!r}")
    if kind is int and value < 0:
        raise ConfigError(f"{key}: must not be negative, got {value}")
    return value


def _dataclass_from(cls: type, doc: Mapping[str, Any], where: str, base: Any = None) -> Any:
    base = base if base is not None else cls()
    names = {f.name: f for f in fields(cls)}
    _check_keys(doc, set(names), where)
    values = {
        k: _typed(v, type(getattr(base, k)), f"{where}{k}") for k, v in doc.items()
    }
    return replace(base, **values)


def _owner(text: str, where: str) -> RecordRef:
    try:
        ref = RecordRef.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if ref.kind not in ("user", "queue"):
        raise ConfigError(f"{where}: a mailbox owner is a user or a queue, not {ref.kind}")
    return ref


def _pattern(value: Any, key: str) -> re.Pattern[str]:
    _typed(value, str, key)
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"{key}: not a valid regular expression: {exc}") from exc


def _rule_item(doc: Any, where: str) -> RuleItem:
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: expected a table")
    allowed = {"name", "sender", "subject", "body", "recipient", "create_case",
               "create_queue_item"}
    _check_keys(doc, allowed, f"{where}.")
    name = _typed(doc.get("name", where), str, f"{where}.name")
    sender = _typed(doc.get("sender", "any"), str, f"{where}.sender")
    if sender not in ("any", "known", "unknown"):
        raise ConfigError(f"{where}.sender: one of any, known, unknown — got {sender!r}")
    item = RuleItem(
        name=name,
        sender=sender,
        subject=_pattern(doc["subject"], f"{where}.subject") if "subject" in doc else None,
        body=_pattern(doc["body"], f"{where}.body") if "body" in doc else None,
        recipient=(
            _typed(doc["recipient"], str, f"{where}.recipient").strip().lower()
            if "recipient" in doc else None
        ),
        create_case=_typed(doc.get("create_case", True), bool, f"{where}.create_case"),
        create_queue_item=_typed(
            doc.get("create_queue_item", True), bool, f"{where}.create_queue_item"
        ),
    )
    if not (item.create_case or item.create_queue_item):
        raise ConfigError(f"{where}: does nothing (create_case and create_queue_item both false)")
    return item


def from_document(doc: Mapping[str, Any]) -> RouteConfig:
    """Validate a parsed rules file (see docs/rules.md) into a RouteConfig."""
    _check_keys(doc, {"track", "correlation", "token", "queues", "cases", "parties"}, "")
    track = _table(doc, "track", "")
    _check_keys(track, {"default", "owners", "create_contacts"}, "track.")
    try:
        default = TrackFilter(track.get("default", "replies"))
        owners = {
            str(_owner(k, f"track.owners.{k}")): TrackFilter(v)
            for k, v in _table(track, "owners", "track.").items()
        }
    except ValueError as exc:
        allowed = ", ".join(f.value for f in TrackFilter)
        raise ConfigError(f"track: filter must be one of {allowed}: {exc}") from exc
    create = {
        str(_owner(k, f"track.create_contacts.{k}")): _typed(
            v, bool, f"track.create_contacts.{k}"
        )
        for k, v in _table(track, "create_contacts", "track.").items()
    }

    corr_doc = dict(_table(doc, "correlation", ""))
    scopes_doc = corr_doc.pop("scopes", {})
    correlation = _dataclass_from(CorrelationSwitches, corr_doc, "correlation.")
    if not isinstance(scopes_doc, Mapping):
        raise ConfigError("correlation.scopes: expected a table")
    scopes: dict[str, CorrelationSwitches] = {}
    for scope, sdoc in scopes_doc.items():
        kind, _, ident = scope.partition(":")
        if kind not in ("mailbox", "queue", "user") or not ident:
            raise ConfigError(
                f"correlation.scopes.{scope}: scope is mailbox:ID, queue:ID or user:ID"
            )
        if not isinstance(sdoc, Mapping):
            raise ConfigError(f"correlation.scopes.{scope}: expected a table")
        scopes[scope] = _dataclass_from(
            CorrelationSwitches, sdoc, f"correlation.scopes.{scope}.", base=correlation
        )

    token = TokenFormat.from_document(_table(doc, "token", ""), "token.")

    queue_rules: dict[str, tuple[RuleItem, ...]] = {}
    for queue_id, qdoc in _table(doc, "queues", "").items():
        where = f"queues.{queue_id}"
        if not isinstance(qdoc, Mapping):
            raise ConfigError(f"{where}: expected a table")
        _check_keys(qdoc, {"rules"}, f"{where}.")
        items = qdoc.get("rules", [])
        if not isinstance(items, list):
            raise ConfigError(f"{where}.rules: expected an array of tables ([[{where}.rules]])")
        queue_rules[queue_id] = tuple(
            _rule_item(item, f"{where}.rules[{i}]") for i, item in enumerate(items)
        )

    cases = _dataclass_from(CaseSettings, _table(doc, "cases", ""), "cases.")
    parties = _dataclass_from(PartySettings, _table(doc, "parties", ""), "parties.")
    if parties.max_matches < 1:
        raise ConfigError("parties.max_matches: must be at least 1")
    return RouteConfig(
        default_filter=default,
        filters=owners,
        create_contacts=create,
        correlation=correlation,
        correlation_scopes=scopes,
        token=token,
        queue_rules=queue_rules,
        cases=cases,
        parties=parties,
    )
