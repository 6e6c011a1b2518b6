"""Anti-spoofing: who may forward into a forward mailbox, and strict address parsing."""

from __future__ import annotations

import pytest
from unwrap_helpers import FORWARD_MAILBOX, direct, forwarded, stamped

from mailroom.records.email import Address
from unwrap.addresses import AddressError, parse_address_list, parse_mailbox
from unwrap.attribution import UNCHECKED_NOTE
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


OURS = "Authentication-Results: mx.crm.example; "
PASS = OURS + "dmarc=pass header.from=corp.example"


def _code(result: object) -> str:
    assert isinstance(result, Rejection), result
    return result.reason_code


def test_forward_without_our_authentication_results_is_a_dead_letter() -> None:
    # the forwarder's address alone proves nothing: anyone can write it into From
    assert _code(forwarded(stamped(""))) == "auth_missing"


def test_only_other_servers_passing_is_auth_missing() -> None:
    forged = ("Authentication-Results: evil.example; dkim=pass header.d=corp.example;"
              " dmarc=pass header.from=corp.example")
    assert _code(forwarded(stamped(forged))) == "auth_missing"


def test_no_authserv_id_configured_fails_closed() -> None:
    # the shipped default: nothing can be trusted, so nothing passes
    result = forwarded("fwd_rfc822_outlook.eml", authserv_id="")
    assert _code(result) == "auth_missing"
    assert "unwrap_authserv_id" in result.reason  # type: ignore[union-attr]


def test_forward_mailbox_opted_out_is_believed_on_from_and_says_so() -> None:
    result = forwarded(stamped(""), authserv_id="",
                       unchecked_forward_mailboxes=frozenset({FORWARD_MAILBOX}))
    assert isinstance(result, list) and len(result) == 1
    assert result[0].delivery.forwarded_by_user == "u-alice"
    assert UNCHECKED_NOTE in result[0].warnings


def test_opt_out_of_another_forward_mailbox_does_not_help() -> None:
    result = forwarded(stamped(""), unchecked_forward_mailboxes=frozenset({"fm2"}))
    assert _code(result) == "auth_missing"


def test_aligned_pass_is_accepted_without_a_note() -> None:
    result = forwarded(stamped(PASS))
    assert isinstance(result, list) and result[0].delivery.forwarded_by_user == "u-alice"
    assert UNCHECKED_NOTE not in result[0].warnings


@pytest.mark.parametrize("auth", [
    # a quoted string holding ';dmarc=pass' is one property value, not a second result
    OURS + 'spf=pass smtp.mailfrom="x;dmarc=pass"@evil.example; dmarc=fail '
    "header.from=corp.example",
    # no DMARC verdict: a DKIM or SPF pass for someone else's domain proves nothing
    OURS + "dkim=pass header.d=evil.example; spf=pass smtp.mailfrom=eve@evil.example",
    OURS + "dmarc=none header.from=corp.example; dkim=pass header.d=evil.example",
    # conflicting results for the From domain
    OURS + "dkim=pass header.d=corp.example; dkim=fail header.d=corp.example",
    OURS + "dmarc=pass header.from=corp.example; dmarc=fail header.from=corp.example",
    # unreadable (an unterminated quote would otherwise swallow the fail after it)
    OURS + 'spf=pass smtp.mailfrom="x; dmarc=fail header.from=corp.example',
    # the topmost header of ours is unreadable: a readable pass below it is never read
    OURS + "dkim=pass header.d=corp.example garbage\n" + PASS,
    # malformed in ways the authres package tripped on (a crash, not a dead letter, before)
    OURS + "dkim=pass header.d=corp.example header.=x",
    OURS + "dmarc=pass header.from=corp.example; none",
])
def test_authentication_results_that_do_not_pass(auth: str) -> None:
    assert _code(forwarded(stamped(auth))) == "auth_failed"


@pytest.mark.parametrize("auth", [
    OURS + "dkim=pass (good signature) header.d=corp.example header.s=sel; dmarc=temperror",
    OURS + "spf=pass smtp.mailfrom=alice@CORP.example",
    "Authentication-Results: (our MX) MX.CRM.Example 1; dmarc=pass (p=reject)"
    " header.from=corp.example",
])
def test_authentication_results_that_pass(auth: str) -> None:
    result = forwarded(stamped(auth))
    assert isinstance(result, list), result


def test_kelvin_sign_is_not_folded_into_an_ascii_k() -> None:
    # U+212A KELVIN SIGN lower-cases to 'k' with str.lower(): it must not match kim@
    forwarders = {FORWARD_MAILBOX: {"kim@corp.example": "u-kim"}}
    honest = forwarded(stamped(PASS, "From: kim@corp.example"), forwarders=forwarders)
    assert isinstance(honest, list) and honest[0].delivery.forwarded_by_user == "u-kim"
    spoof = stamped(PASS, "From: \u212aim@corp.example")
    assert _code(forwarded(spoof, forwarders=forwarders)) == "not_a_forwarder"


def test_a_from_line_with_a_space_before_the_colon_makes_the_forwarder_ambiguous() -> None:
    # "From :" is obsolete but legal syntax; our parser does not read it as From, a DMARC
    # checker or mail client may: which From was meant is ambiguous
    later = stamped(PASS, "From: Alice Agent <alice@corp.example>\r\nFrom : eve@evil.example")
    first = b"From : eve@evil.example\r\n" + stamped(PASS)  # taken for an mbox From_ line
    assert _code(forwarded(later)) == "forwarder_ambiguous"
    assert _code(forwarded(first)) == "forwarder_ambiguous"


def test_dropped_from_line_in_an_original_is_flagged() -> None:
    data = b"To: alice@corp.example\r\nSubject: hi\r\nFrom : eve@evil.example\r\n\r\nbody\r\n"
    email = direct(data)[0]
    assert email.from_address is None
    assert any("'From :'" in w for w in email.warnings)


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


def test_an_atom_run_is_what_the_character_rule_accepts_for_every_code_point() -> None:
    # The tokenizer reads runs of atext with one regular expression: it must accept exactly
    # the characters the per-character rule does (ASCII letters, digits, the extras, non-ASCII).
    from unwrap.addresses import _ATEXT_RUN, _is_atext

    differ = [c for c in range(0x110000) if bool(_ATEXT_RUN.fullmatch(chr(c))) != _is_atext(chr(c))]
    assert differ == []
    assert _ATEXT_RUN.match("jane.doe", 0)[0] == "jane"  # a run stops at a special
