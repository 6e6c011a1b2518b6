"""Ingest's quick parse of FETCH responses gives what imapclient's parser gives, or leaves the
response to it: held equal on generated responses of every shape ingest meets, and through
the real Dovecot."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from imapclient import IMAPClient
from imapclient.response_parser import parse_fetch_response

from ingest import fetching
from mailroom.console.stack import dovecot
from mailroom.settings import Settings

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def imapclient_says(data: list[Any]) -> dict[int, dict[bytes, Any]]:
    parsed = parse_fetch_response(data, True, True)
    for values in parsed.values():
        when = values.get(b"INTERNALDATE")
        if isinstance(when, datetime) and when.tzinfo is None:
            values[b"INTERNALDATE"] = when.astimezone(UTC)
    return parsed


def same(a: dict[int, dict[bytes, Any]], b: dict[int, dict[bytes, Any]]) -> bool:
    """Equal, INTERNALDATE compared as instants."""
    if a.keys() != b.keys():
        return False
    for uid in a:
        x, y = dict(a[uid]), dict(b[uid])
        dx, dy = x.pop(b"INTERNALDATE", None), y.pop(b"INTERNALDATE", None)
        if x != y or (dx is None) != (dy is None) or (dx is not None and dx != dy):
            return False
    return True


def date(rng: random.Random) -> bytes:
    day = rng.randint(1, 28)
    sign = rng.choice("+-")
    zone = rng.choice(["0000", "0100", "0530", "0800", "1200", "0945"])
    day_text = f"{day:2d}" if rng.random() < 0.5 else f"{day:02d}"
    return (f"{day_text}-{rng.choice(MONTHS)}-{rng.randint(1990, 2030)} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} "
            f"{sign}{zone}").encode()


def body(rng: random.Random) -> bytes:
    parts = [b"Subject: x\r\n\r\n", b")", b'"', b"{12}", b"\r\n", b"BODY[] {3}", b"\x00",
             bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))]
    return b"".join(rng.choice(parts) for _ in range(rng.randint(0, 12)))


def plain(rng: random.Random, seq: int, uid: int, with_body: bool) -> list[Any]:
    items = [b"UID %d" % uid, b"RFC822.SIZE %d" % rng.randint(0, 10**8),
             b'INTERNALDATE "%s"' % date(rng)]
    rng.shuffle(items)
    if not with_body:
        return [b"%d (%s)" % (seq, b" ".join(items))]
    content = body(rng)
    head = b"%d (%s BODY[] {%d}" % (seq, b" ".join(items), len(content))
    return [(head, content), b")"]


def test_plain_responses_are_parsed_quickly_and_as_imapclient_parses_them() -> None:
    rng = random.Random(7)
    for _ in range(500):
        with_body = rng.random() < 0.5
        data: list[Any] = []
        for seq in range(1, rng.randint(1, 6)):
            data += plain(rng, seq, rng.randint(1, 10**9), with_body)
        quick = fetching.parse(data)
        assert quick is not None, data
        assert same(quick, imapclient_says(data)), data


OTHER_SHAPES = [
    # FLAGS the server added, a quoted or NIL body, an unsolicited FETCH without UID, other
    # sections, something after the literal, a literal whose length is not the one announced.
    [b'1 (UID 5 FLAGS (\\Seen) RFC822.SIZE 3 INTERNALDATE "03-Dec-2026 10:00:00 +0000")'],
    [b'1 (UID 5 BODY[] "abc")'],
    [b'1 (UID 5 BODY[] NIL)'],
    [b'4 (FLAGS (\\Seen))', b'1 (UID 5 RFC822.SIZE 3)'],
    [(b'1 (UID 5 BODY[HEADER.FIELDS (MESSAGE-ID)] {2}', b"\r\n"), b")"],
    [(b'1 (UID 5 BODY[] {3}', b"abc"), b' FLAGS (\\Seen))'],
    [(b'1 (UID 5 BODY[] {4}', b"abc"), b")"],
    [b'1 (UID 5 INTERNALDATE "31-Feb-2026 10:00:00 +0000")'],
    [b'1 (UID 5 INTERNALDATE "03-Foo-2026 10:00:00 +0000")'],
    [b'1 (RFC822.SIZE 3)'],
    [b'1 (UID 5 RFC822.SIZE 3'],
]


def test_two_responses_for_one_uid_are_merged_as_imapclient_merges_them() -> None:
    data = [b'1 (UID 5 RFC822.SIZE 3)', b'1 (UID 5 INTERNALDATE "03-Dec-2026 10:00:00 +0000")']
    quick = fetching.parse(data)
    assert quick is not None and same(quick, imapclient_says(data))
    assert set(quick[5]) == {b"SEQ", b"RFC822.SIZE", b"INTERNALDATE"}


@pytest.mark.parametrize("data", OTHER_SHAPES)
def test_other_shapes_are_left_to_imapclient(data: list[Any]) -> None:
    assert fetching.parse(data) is None


@pytest.mark.integration
def test_fetch_through_dovecot_gives_what_imapclient_gives(
    base_settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "fp" + uuid.uuid4().hex[:10]
    stack = base_settings
    dovecot.add_user(stack, name, "pw")
    try:
        with IMAPClient("127.0.0.1", port=stack.imap_port, ssl=False, timeout=10) as client:
            client.login(name, "pw")
            for n in range(3):
                client.append("INBOX", b"Subject: %d\r\n\r\n)\"{5}\r\n" % n)
            client.select_folder("INBOX")
            uids = client.search(["ALL"])
            for items, quick in (([b"RFC822.SIZE", b"INTERNALDATE"], True),
                                 ([b"BODY.PEEK[]", b"INTERNALDATE", b"RFC822.SIZE"], True),
                                 ([b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"], False)):
                theirs = client.fetch(uids, items)
                for values in theirs.values():
                    when = values.get(b"INTERNALDATE")
                    if isinstance(when, datetime):
                        values[b"INTERNALDATE"] = when.astimezone(UTC)
                used: list[bool] = []
                monkeypatch.setattr(fetching, "parse_fetch_response",
                                    lambda *a, used=used: (used.append(True),
                                                           parse_fetch_response(*a))[1])
                ours = fetching.fetch(client, uids, items)
                assert same(ours, theirs), items
                assert used == ([] if quick else [True]), "the quick parse takes Dovecot's"
                assert len(ours) == 3
    finally:
        dovecot.remove_users(stack, [name])
