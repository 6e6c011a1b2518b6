"""A base64 body decoded with fewer copies gives the stdlib's bytes and defects, always."""

from __future__ import annotations

import base64
import copy
import random

import pytest

from unwrap.mime import parse
from unwrap.transfer import base64_body


def leaf(body: bytes, cte: str = "base64") -> bytes:
    return (b"From: a@example.com\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n" + body)


def both(data: bytes) -> tuple[tuple[object, list[str]], tuple[object, list[str]]]:
    ours, theirs = parse(data), parse(data)
    mine = base64_body(ours)
    stdlib = theirs.get_payload(decode=True)
    return ((mine, [type(d).__name__ for d in ours.defects]),
            (stdlib, [type(d).__name__ for d in theirs.defects]))


def variants() -> list[bytes]:
    rng = random.Random(7)
    out = []
    for n in (0, 1, 2, 3, 57, 58, 1000):
        raw = rng.randbytes(n)
        enc = base64.encodebytes(raw)
        out += [enc, enc.replace(b"\n", b"\r\n"), enc.rstrip(b"=\n"), enc + b"\r\n\r\n",
                enc.replace(b"\n", b"\r"), enc[: max(0, len(enc) - 2)],
                enc.replace(b"A", b"A*", 1), enc + b"!!", b" " + enc, enc + b"=",
                enc.replace(b"\n", b" \n")]
    # Padding split by line ends, in the middle, or too much: the well-formed shortcut must
    # take exactly the bodies the strict decode accepts.
    out += [b"QQ=\r\n=\r\n", b"QUI=\r\n", b"QQ\r\n==", b"QQ===\r\n", b"Q===", b"====",
            b"QUJD=QUJD\r\n", b"QUJD\r\n=", b"=\r\n", b"\r\n", b"QUJDRA\r\n=="]
    for _ in range(300):  # mutated bodies: inserted, dropped and odd characters
        body = bytearray(base64.encodebytes(rng.randbytes(rng.randrange(0, 200))))
        for _ in range(rng.randrange(0, 4)):
            pos = rng.randrange(0, len(body) + 1)
            body[pos:pos + rng.randrange(0, 3)] = bytes(
                rng.choice(b"A=\r\n \t-_.*/+") for _ in range(rng.randrange(0, 3)))
        out.append(bytes(body))
    return out


@pytest.mark.parametrize("body", variants())
def test_same_bytes_and_defects_as_the_stdlib(body: bytes) -> None:
    mine, stdlib = both(leaf(body))
    assert mine == stdlib


def test_not_base64_or_not_ascii_is_left_to_the_stdlib() -> None:
    assert base64_body(parse(leaf(b"=41=42\r\n", "quoted-printable"))) is None
    assert base64_body(parse(leaf("QUJD\u00e9\r\n".encode()))) is None
    multipart = parse(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n")
    assert base64_body(multipart) is None


def test_a_big_body_is_decoded_without_a_line_list() -> None:
    raw = random.Random(1).randbytes(3 * 1024 * 1024)
    part = parse(leaf(base64.encodebytes(raw).replace(b"\n", b"\r\n")))
    assert base64_body(copy.copy(part)) == raw == part.get_payload(decode=True)
