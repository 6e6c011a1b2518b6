"""Bad input must not cost too much: bodies assembled once, headers and recipients capped."""

from __future__ import annotations

import tracemalloc

from unwrap_helpers import context, direct, forwarded, raw, stamped

from unwrap.content import collect
from unwrap.context import Rejection
from unwrap.limits import Limits
from unwrap.parse import parse_message
from unwrap.unwrap import unwrap


def _mixed(parts: int, chars: int) -> bytes:
    body = ("x" * 76 + "\r\n") * (chars // 78)
    chunks = [f"--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n{body}" for i in range(parts)]
    return ("From: a@x.example\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            + "\r\n".join(chunks) + "\r\n--b--\r\n").encode()


def test_mixed_body_pieces_are_joined_in_order() -> None:
    content = collect(parse_message(_mixed(3, 200)), Limits())
    assert content.text is not None
    assert [line for line in content.text.splitlines() if line.startswith("part")] == [
        "part 0", "part 1", "part 2"]
    assert content.warnings == []


def test_many_body_parts_are_not_copied_again_and_again() -> None:
    """200 text parts of 100 KB with a 10,000-character body limit: only the kept text is held,
    never a body as long as all parts together (appending to one string per part did that,
    and copied it every time)."""
    msg = parse_message(_mixed(200, 100_000))
    tracemalloc.start()
    try:
        content = collect(msg, Limits(max_body_chars=10_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert content.text is not None and len(content.text) == 10_000
    assert content.text.startswith("part 0")
    assert any("cut at 10000 characters" in w for w in content.warnings)
    assert peak < 5_000_000, peak  # the whole body would be ~20 MB (40 MB as it is copied)


def _many_recipients(n: int) -> bytes:
    to = ", ".join(f'"Person {i}, Dept" <p{i}@x.example>' for i in range(n))
    return (f"From: a@x.example\r\nTo: {to}\r\nSubject: hi\r\nMessage-ID: <m@x.example>\r\n"
            "\r\nbody\r\n").encode()


def test_a_huge_to_header_is_cut_at_an_address_and_said_so() -> None:
    email = direct(_many_recipients(20_000), limits=Limits(max_header_chars=10_000))
    assert 0 < len(email[0].to) < 400
    assert email[0].to[0].address == "p0@x.example"
    assert all(a.name.startswith("Person ") for a in email[0].to)  # no half-parsed entry
    assert any("cut at" in w and w.startswith("to:") for w in email[0].warnings)


def test_recipients_past_the_cap_are_left_out_and_said_so() -> None:
    email = direct(_many_recipients(50), limits=Limits(max_recipients=10))[0]
    assert [a.address for a in email.to] == [f"p{i}@x.example" for i in range(10)]
    assert any("50 addresses, only the first 10 kept" in w for w in email.warnings)


def test_caps_dead_letter_when_configured_to_reject() -> None:
    result = unwrap(raw(_many_recipients(50)), context(limits=Limits(max_recipients=10,
                                                                     over_limit="reject")))
    assert isinstance(result, Rejection) and result.reason_code == "too_many_recipients"
    result = unwrap(raw(_many_recipients(500)), context(
        limits=Limits(max_header_chars=1_000, over_limit="reject")))
    assert isinstance(result, Rejection) and result.reason_code == "header_too_long"


def test_a_huge_forwarder_from_is_not_parsed() -> None:
    data = stamped("", "From: " + "a" * 100_000 + "@corp.example")
    result = forwarded(data, limits=Limits(max_header_chars=1_000))
    assert isinstance(result, Rejection) and result.reason_code == "forwarder_unparseable"
