"""Authentication-Results (RFC 8601): which header is ours, how it parses, when it passes."""

from __future__ import annotations

import pytest

from unwrap.authresults import (
    MAX_HEADER_CHARS,
    Unreadable,
    authserv_id_of,
    parse,
    trusted_header,
    verdict,
)
from unwrap.parse import parse_message


def test_quoted_strings_and_comments_are_honoured() -> None:
    r = parse('mx.crm.example (ours; dmarc=pass); spf=pass (ip 1.2.3.4; dmarc=pass) '
              'smtp.mailfrom="x;dmarc=pass"@evil.example; dmarc=fail header.from=corp.example')
    assert [(m.method, m.result) for m in r.results] == [("spf", "pass"), ("dmarc", "fail")]
    assert r.results[0].props == {"smtp.mailfrom": '"x;dmarc=pass"@evil.example'}
    assert verdict(r, "corp.example") == "dmarc=fail"


@pytest.mark.parametrize("value", [
    'mx.crm.example; spf=pass smtp.mailfrom="x; dmarc=fail header.from=corp.example',
    "mx.crm.example; dkim=pass header.d=corp.example trailing-garbage",
    "mx.crm.example; dkim=pass (unclosed comment header.d=corp.example",
    "mx.crm.example; dkim=pass header.d=corp.ex\u00e4mple",
    "mx.crm.example",
    "",
    "mx.crm.example; dkim=pass header.d=x.example " + "x" * MAX_HEADER_CHARS,
])
def test_what_does_not_parse_completely_is_unreadable(value: str) -> None:
    with pytest.raises(Unreadable):
        parse(value)


def test_authserv_id_is_read_cheaply_past_comments() -> None:
    assert authserv_id_of("(received by) MX.crm.example 1; none") == "mx.crm.example"
    assert authserv_id_of(" ; dkim=pass") == ""


def test_the_topmost_header_of_our_server_is_the_one() -> None:
    msg = parse_message(
        b"Authentication-Results: other.example; dmarc=pass header.from=corp.example\r\n"
        b"Authentication-Results: mx.crm.example;\r\n dmarc=fail header.from=corp.example\r\n"
        b"Authentication-Results: mx.crm.example; dmarc=pass header.from=corp.example\r\n"
        b"From: alice@corp.example\r\n\r\nbody\r\n")
    assert trusted_header(msg, "MX.crm.example") == (
        "mx.crm.example; dmarc=fail header.from=corp.example")
    assert trusted_header(msg, "") is None
    assert trusted_header(msg, "mx.other.example") is None


@pytest.mark.parametrize("value", [
    "mx; dmarc=pass header.from=corp.example",
    "mx; dmarc=pass header.from=CORP.Example",
    "mx; dmarc=temperror; dkim=pass header.d=corp.example",
    "mx; dkim=pass header.i=@corp.example",
    "mx; dkim=none; spf=pass smtp.mailfrom=bounce@corp.example",
    "mx; dkim=pass header.d=corp.example; dkim=pass header.d=mailer.example",
])
def test_aligned_passes(value: str) -> None:
    assert verdict(parse(value), "corp.example") is None


@pytest.mark.parametrize("value, why", [
    ("mx; dmarc=pass", "which domain"),
    ("mx; dmarc=pass header.from=evil.example", "header.from=evil.example"),
    ("mx; dmarc=fail header.from=corp.example; dkim=pass header.d=corp.example", "dmarc=fail"),
    ("mx; dmarc=pass header.from=corp.example; dmarc=fail header.from=corp.example",
     "conflicting"),
    ("mx; dkim=pass header.d=evil.example", "aligned"),
    ("mx; dkim=pass header.d=example", "aligned"),  # a parent domain is not aligned (strict)
    ("mx; spf=pass smtp.mailfrom=eve@evil.example", "aligned"),
    ("mx; spf=pass smtp.helo=corp.example", "aligned"),
    ("mx; dkim=pass header.d=corp.example; dkim=fail header.d=corp.example", "conflict"),
    ("mx; compauth=pass reason=100", "aligned"),
    ("mx; none", "no results"),
])
def test_no_pass(value: str, why: str) -> None:
    found = verdict(parse(value), "corp.example")
    assert found is not None and why in found


def test_domains_fold_ascii_only() -> None:
    # the Kelvin sign folds to 'k' with str.lower(); "\u212aorp.example" is not korp.example
    r = parse("mx; dmarc=pass header.from=korp.example")
    assert verdict(r, "KORP.example") is None
    assert verdict(r, "\u212aorp.example") is not None


def test_patterns_are_compiled_once_whatever_flushes_the_re_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = ("mx.crm.example; dkim=pass header.d=corp.example header.s=s1; "
             "spf=pass smtp.mailfrom=alice@corp.example; dmarc=pass header.from=corp.example")
    first = parse(value)
    re_module = __import__("re")
    re_module.purge()  # what the email parser's one-off boundary patterns do to the cache

    def no_compile(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pattern was compiled again")

    monkeypatch.setattr(re_module, "compile", no_compile)
    assert parse(value) == first
    assert verdict(first, "corp.example") is None
