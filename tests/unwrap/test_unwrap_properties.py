"""Property: whatever bytes arrive, no exception escapes unwrap() (mutated real messages)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from unwrap_helpers import FIXTURES, FORWARD_MAILBOX, context, raw

from unwrap.context import Rejection
from unwrap.unwrap import unwrap

SEEDS = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]
NASTY = [b"\x00", b"\r\n\r\n", b"--", b"boundary=\"", b"=?utf-8?b?", b"=?x-unknown?q?=FF?=",
         b"Content-Type: message/rfc822\r\n\r\n", b"\xff\xfe", b"Content-Transfer-Encoding: "
         b"base64\r\n", b"<", b">", b"@", b'"', b"(", b";", b"\t", b"\x78\x9f\x3e\x22",
         b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"filename*0*=utf-8''%FF"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 3))
        if op == 0:
            del data[pos:pos + draw(st.integers(1, 200))]
        elif op == 1:
            data[pos:pos] = draw(st.sampled_from(NASTY))
        elif op == 2:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        else:
            start = draw(st.integers(0, len(data)))
            data[pos:pos] = data[start:start + draw(st.integers(1, 400))]
    return bytes(data)


@settings(deadline=None, derandomize=True, max_examples=200)
@given(mutated())
def test_no_exception_escapes_unwrap(data: bytes) -> None:
    for kind, mailbox in (("user", "mb-alice"), ("forward", FORWARD_MAILBOX)):
        result = unwrap(raw(data, kind=kind, mailbox=mailbox), context())
        if isinstance(result, Rejection):
            assert result.reason_code and result.reason, result
        else:
            for email in result:
                email.to_avro()  # the record is well-formed enough to serialise
