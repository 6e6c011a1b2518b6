"""Anti-spoofing: who may forward into a forward mailbox, and strict address parsing."""

from __future__ import annotations

import pytest
from unwrap_helpers import forwarded

from mailroom.records.email import Address
from unwrap.addresses import AddressError, parse_address_list, parse_mailbox
from unwrap.context import Rejection


@pytest.mark.parametrize("name, code", [
    ("spoof_not_forwarder.eml", "not_a_forwarder"),
    ("spoof_quoted_local.eml", "not_a_forwarder"),
    ("spoof_display_name.eml", "forwarder_unparseable"),
    ("spoof_two_from.eml", "forwarder_unparseable"),
    ("spoof_forged_authres.eml", "auth_failed"),
    ("spoof_authres_other_domain.eml", "auth_failed"),
])
def test_spoofed_forwards_are_dead_letters(name: str, code: str) -> None:
    result = forwarded(name)
    assert isinstance(result, Rejection), result
    assert result.reason_code == code


def test_forger_claiming_our_id_only_further_down_is_ignored() -> None:
    # the topmost header of our own server wins: it says fail, the forged pass below is ignored
    result = forwarded("spoof_forged_authres.eml")
    assert isinstance(result, Rejection) and "dmarc=fail" in result.reason


def test_auth_results_of_other_servers_are_not_trusted() -> None:
    # with no trusted server configured, a failing header decides nothing
    result = forwarded("spoof_forged_authres.eml", authserv_id="")
    assert isinstance(result, list) and len(result) == 1


def test_failing_auth_can_be_allowed_by_configuration() -> None:
    result = forwarded("spoof_forged_authres.eml", require_auth_pass=False)
    assert isinstance(result, list)


def test_forwarder_of_another_forward_mailbox_is_refused() -> None:
    from unwrap_helpers import context, fixture, raw

    from unwrap.unwrap import unwrap

    result = unwrap(raw(fixture("fwd_rfc822_outlook.eml"), kind="forward", mailbox="fm2"),
                    context())
    assert isinstance(result, Rejection) and result.reason_code == "not_a_forwarder"


@pytest.mark.parametrize("value, expected", [
    ("alice@corp.example", Address("", "alice@corp.example")),
    ("Alice Agent <Alice@CORP.example>", Address("Alice Agent", "Alice@corp.example")),
    ('"Agent, Alice" <alice@corp.example>', Address("Agent, Alice", "alice@corp.example")),
    ("=?utf-8?q?J=C3=BCrgen?= <j@x.example>", Address("Jürgen", "j@x.example")),
    ("alice@corp.example (Alice)", Address("", "alice@corp.example")),
    ('"alice@corp.example"@evil.example', Address("", '"alice@corp.example"@evil.example')),
    ("=?utf-8?q?alice=40corp.example_=3Cx=40y=3E?= <eve@evil.example>",
     Address("alice@corp.example <x@y>", "eve@evil.example")),
])
def test_strict_mailbox(value: str, expected: Address) -> None:
    assert parse_mailbox(value) == expected


@pytest.mark.parametrize("value", [
    "alice@corp.example <eve@evil.example>",
    "alice@corp.example@evil.example",
    "alice@corp.example, eve@evil.example",
    "alice@corp.example)<eve@evil.example>",
    '"alice@corp.example <eve@evil.example>',
    "<alice@corp.example> <eve@evil.example>",
    "Team: alice@corp.example;",
    "=?utf-8?q?alice@corp.example_<x@y>?= <eve@evil.example>",
    "",
    "alice",
])
def test_strict_mailbox_refuses_ambiguous_forms(value: str) -> None:
    with pytest.raises(AddressError):
        parse_mailbox(value)


def test_address_list_is_relaxed_about_names_but_never_guesses_addresses() -> None:
    found, problems = parse_address_list(
        "a@x.example, Bob Q. Public <bob@y.example>, undisclosed-recipients:;, "
        "alice@corp.example <eve@evil.example>, broken@@x")
    assert found == [Address("", "a@x.example"), Address("Bob Q. Public", "bob@y.example"),
                     Address("alice@corp.example", "eve@evil.example")]
    assert len(problems) == 1 and "broken@@x" in problems[0]
