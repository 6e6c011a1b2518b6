"""A base64 body decoded with fewer copies gives the stdlib's bytes and defects, always."""

from __future__ import annotations

import base64
import copy
import random

import pytest

from unwrap.mime import parse
from unwrap.transfer import _CLEAN, base64_body, well_formed


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


def _by_definition(text: str) -> bool:
    return bool(_CLEAN.fullmatch(text)) and (
        len(text) - text.count("\r") - text.count("\n")) % 4 == 0


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
def test_well_formed_is_the_definition_in_any_slices(chunk: int) -> None:
    # The bodies above, and padding runs longer than the window looked at for the tail.
    texts = [b.decode("latin-1") for b in variants()] + [
        "", "=", "==", "===", "\r\n" * 100, "QUJD" + "\r\n" * 100, "QQ=" + "\r\n" * 70 + "=",
        "QQ=" + "\n" * 70 + "==", "QUJD" * 40 + "=\n=", "QUJD" * 40 + "=\n=\n=" + "\n" * 80]
    texts = [t for t in texts if t.isascii()]
    assert {_by_definition(t) for t in texts} == {True, False}
    assert [well_formed(t, chunk) for t in texts] == [_by_definition(t) for t in texts]
