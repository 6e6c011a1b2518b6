"""The plain-shape reader of Authentication-Results against the ``authres`` package it stands in
for: on every value, the same results or the same refusal (the reader leaves every other shape
to the package, and must never accept what the package refuses)."""

from __future__ import annotations

import random

import pytest

from unwrap import authresults
from unwrap.authresults import AuthResults, MethodResult, Unreadable, parse

PIECES = {
    "ws": ["", " ", "  ", "\t", " \t "],
    "id": ["mx.crm.example", "MX.Crm.Example", "mx", "mx-1.crm.example", "a=b", "x/y.z", "1.2",
           "mx..crm", ".mx", "mx.", "m\u00e4x"],
    "method": ["dkim", "spf", "dmarc", "DKIM", "arc", "iprev", "auth", "x-custom.sub", "dkim/1",
               "none", "nonesuch", "a=b", "", "dk im"],
    "result": ["pass", "fail", "none", "softfail", "neutral", "temperror", "PASS", "pa.ss",
               "pass/x", "pass=1", "", "p\u00e4ss"],
    "ptype": ["header", "smtp", "body", "policy", "HEADER", "Smtp", "reason", "reasonable",
              "other", "head er", ""],
    "name": ["d", "i", "from", "mailfrom", "s", "b", "x.y", "x..y", "", "a=b", "a/b"],
    "value": ["corp.example", "alice@corp.example", "@corp.example", "@", "", "abc+/=def",
              '"quoted"', '"a;b"@evil.example', "(c)x", "x(y)", "a b", "a;b", "\\x", "x@y@z",
              "@.x", "@x..y", "caf\u00e9"],
}


# The first few of each kind are of the plain shape; the rest are the edges of the grammar.
PLAIN = {"ws": 5, "id": 5, "method": 7, "result": 7, "ptype": 6, "name": 7, "value": 6}


def pick(rng: random.Random, kind: str) -> str:
    pieces = PIECES[kind]
    return rng.choice(pieces[: PLAIN[kind]] if rng.random() < 0.97 else pieces)


def header(rng: random.Random) -> str:
    w = lambda: pick(rng, "ws")  # noqa: E731 - short local helper
    out = [w(), pick(rng, "id"), w()]
    if rng.random() < 0.05:
        out += ["1", w()]
    for _ in range(rng.randrange(0, 4)):
        out += [";", w(), pick(rng, "method"), w(), "=", w(), pick(rng, "result"), w()]
        if rng.random() < 0.05:
            out += ["reason=", rng.choice(["x", '"a b"']), w()]
        for _ in range(rng.randrange(0, 4)):
            out += [" " if rng.random() < 0.9 else "", pick(rng, "ptype"), w(), ".", w(),
                    pick(rng, "name"), w(), "=", w(), pick(rng, "value"), w()]
    if rng.random() < 0.05:
        out += [";", w(), rng.choice(["none", "NONE", ""]), w()]
    if rng.random() < 0.05:
        out.append(rng.choice([";", "(comment)", "\r\n", "x"]))
    return "".join(out)


def mutate(rng: random.Random, value: str) -> str:
    chars = list(value)
    for _ in range(rng.randrange(1, 4)):
        pos = rng.randrange(0, len(chars) + 1)
        if rng.random() < 0.5 and pos < len(chars):
            del chars[pos]
        else:
            chars.insert(pos, rng.choice(';=.@/"()\\ \t-_+x9A'))
    return "".join(chars)


def by_the_package(value: str) -> AuthResults | str:
    """What ``parse`` gave before the reader: the package's strict parse of every value."""
    if len(value) > authresults.MAX_HEADER_CHARS or not value.isascii():
        return "Unreadable"
    try:
        authserv_id, found = authresults._strict(value)  # noqa: SLF001 - the reference
        return AuthResults(authresults.ascii_lower(authserv_id), tuple(
            MethodResult(authresults.ascii_lower(str(r.method)),
                         authresults.ascii_lower(str(r.result)),
                         {f"{authresults.ascii_lower(str(p.type))}."
                          f"{authresults.ascii_lower(str(p.name))}": str(p.value)
                          for p in r.properties})
            for r in found))
    except Unreadable:
        return "Unreadable"
    except Exception as exc:  # noqa: BLE001 - whatever it raised, the reader must raise it too
        return type(exc).__name__


def by_the_reader(value: str) -> AuthResults | str:
    try:
        return parse(value)
    except Unreadable:
        return "Unreadable"
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__


def values() -> list[str]:
    rng = random.Random(8601)
    made = [header(rng) for _ in range(3000)]
    made += [mutate(rng, v) for v in made]
    return made


def test_the_reader_reads_as_the_package_does() -> None:
    plain = 0
    for value in values():
        assert by_the_reader(value) == by_the_package(value), value
        plain += authresults._plain(value) is not None  # noqa: SLF001
    # The comparison means something only if the reader itself answered for many of them.
    assert plain > 800


@pytest.mark.parametrize("value", [
    "mx.crm.example; spf=pass smtp.mailfrom=crm.example; dkim=pass header.d=crm.example; "
    "dmarc=pass header.from=crm.example",
    "mx.google.com; dkim=pass header.i=@example.com header.s=s1 header.b=AbC+/d=; "
    "spf=pass smtp.mailfrom=bounce@example.com; dmarc=pass header.from=example.com",
    "MX.crm.example;dkim = pass\theader . d = corp.example ;spf=fail",
])
def test_the_usual_headers_are_read_without_the_package(value: str) -> None:
    assert authresults._plain(value) is not None  # noqa: SLF001
    assert by_the_reader(value) == by_the_package(value)


@pytest.mark.parametrize("value", [
    "mx.crm.example (comment); dkim=pass header.d=corp.example",
    'mx.crm.example; spf=pass smtp.mailfrom="x;dmarc=pass"@evil.example',
    "mx.crm.example 1; dkim=pass",
    "mx.crm.example; none",
    "mx.crm.example; dkim/1=pass",
    "mx.crm.example; dkim=fail reason=bad header.d=corp.example",
    "mx.crm.example; dkim=pass other.d=corp.example",
    "mx.crm.example; dkim=pass header.d=",
])
def test_other_shapes_are_left_to_the_package(value: str) -> None:
    assert authresults._plain(value) is None  # noqa: SLF001
    assert by_the_reader(value) == by_the_package(value)


@pytest.mark.parametrize("value", [
    "mx.crm.example; dkim=pass header.=corp.example",  # the package raised AttributeError
    "mx.crm.example; dkim=pass header.=",
    "mx.crm.example; spf=pass; none",  # the package kept "none" as a result without a method
    "mx.crm.example; spf=pass smtp.mailfrom=a@crm.example; none",
])
def test_what_the_package_trips_on_is_unreadable_not_a_crash(value: str) -> None:
    with pytest.raises(Unreadable):
        parse(value)
