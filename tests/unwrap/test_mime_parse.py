"""unwrap.mime builds the stdlib's compat32 tree: hand-written edge cases and mutated mail.

Every case is parsed by both and the trees compared field by field; each case also says which
path it must take, so a fast path that silently gave everything to the stdlib would fail here.
"""

from __future__ import annotations

import random

import pytest
from mime_trees import STDLIB, tree_difference

from unwrap import mime


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def nested(levels: int) -> str:
    return "Content-Type: message/rfc822\n\n" * levels + "Subject: x\n\nbody\n"


MIXED = ("From: a@example.com\nSubject: nested\nMIME-Version: 1.0\n"
         'Content-Type: multipart/mixed; boundary="outer"\n\n'
         "This is a multi-part message in MIME format.\n\n"
         "--outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n"
         "--inner\nContent-Type: text/plain; charset=utf-8\n\nplain text\n\n"
         "--inner\nContent-Type: multipart/related; boundary=rel\n\n"
         "--rel\nContent-Type: text/html\n\n<p>html</p>\n--rel\nContent-Type: image/png\n"
         "Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--rel--\n\n--inner--\nafter inner\n"
         "--outer\nContent-Type: message/rfc822\n\nFrom: b@example.com\nSubject: original\n"
         'Content-Type: multipart/mixed; boundary="orig"\n\n--orig\n\noriginal body\n'
         "--orig--\noriginal epilogue\n\n--outer--\nthe epilogue\n")

DIGEST = ('Content-Type: multipart/digest; boundary="d"\n\npreamble\n--d\n\n'
          "Subject: first\n\nfirst body\n\n--d\nContent-Type: text/plain\n\nnot a message\n"
          "--d\n\nSubject: third\nContent-Type: multipart/mixed; boundary=t\n\n--t\n\nx\n"
          "--t--\n--d--\n")

REPORT = ("Subject: Undelivered Mail\nContent-Type: multipart/report; "
          "report-type=delivery-status; boundary=r\n\n--r\n\nThe mail could not be delivered.\n"
          "--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n"
          "Arrival-Date: Mon, 3 Mar 2025 10:00:00 +0000\n\nFinal-Recipient: rfc822; x@example\n"
          "Action: failed\nStatus: 5.1.1\n\n\nX-Extra: after two blank lines\n\n"
          "--r\nContent-Type: text/rfc822-headers\n\nSubject: lost\n--r--\n")

FAST = {
    "nested multiparts, rfc822 in mixed, preamble and epilogues": MIXED,
    "the same in CRLF": crlf(MIXED),
    "multipart/digest children default to message/rfc822": DIGEST,
    "delivery-status blocks": REPORT,
    "delivery-status in CRLF": crlf(REPORT),
    "boundary with regex metacharacters": (
        'Content-Type: multipart/mixed; boundary="(a.b)*+?[x]^$|\\\\"\n\n'
        "--(a.b)*+?[x]^$|\\\n\none\n--(a.b)*+?[x]^$|\\--\n"),
    "boundary lines with trailing blanks": (
        "Content-Type: multipart/mixed; boundary=b\n\n--b \t\n\none\n--b\t\n\ntwo\n--b-- \n"),
    "boundary-like lines that are not boundaries": (
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--bx\n --b\n--b -x\n--b---\n"
        "text --b\n--b--x\n--b\n\nlast\n--b--\n--b\nafter the end is epilogue\n"),
    "outer boundary a prefix of the inner one": (
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: multipart/mixed; boundary=b-1\n\n--b-1\n\ninner\n--b-1--\n--b--\n"),
    "no newline after the closing boundary": (
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--"),
    "no newline at the end of a leaf": "Subject: x\n\nno final newline",
    "mixed line endings": crlf(MIXED[:MIXED.index("--outer\n")]) + MIXED[MIXED.index("--outer\n"):],
    "8-bit headers and bodies": (
        "Subject: caf\xe9 \xc3\xa9t\xc3\xa9\nX-Name: \xff\xfe\nContent-Type: multipart/mixed; "
        "boundary=b\n\n--b\nContent-Type: text/plain; name=\"\xe9\"\n\nbody \xe9\x80\n--b--\n"),
    "NUL bytes": "Subject: a\x00b\n\nbody\x00with\x00nuls\n",
    "empty parts": (
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--b\n\n\n--b\nX-Only: header\n"
        "--b--\n"),
    "a part that is only a newline": (
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n\n\n--b--\n"),
    "headers without a body separator": "Subject: headers only\nX-Other: y\n",
    "headers without a final newline": "Subject: headers only",
    "empty message": "",
    "only a blank line": "\n",
    "no headers at all": "\nbody only\n",
    "folded and empty header values": (
        "Subject:\n\tfolded from an empty first line\nX-Empty:\nX-Blank: \t \n"
        "X-Fold: a\n \n\tb\nX-Tight:value\n\nbody\n"),
    "spaced From as the first line (an envelope line to compat32)": "From : a@example.com\n\nb\n",
    "mbox envelope line": "From someone@example.com Mon Mar  3 10:00:00 2025\nSubject: x\n\nbody\n",
    "mbox envelope line in CRLF": crlf("From someone Mon Mar  3 10:00:00 2025\nSubject: x\n\nb\n"),
    "very long lines": (
        "Subject: " + "long " * 20_000 + "\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Transfer-Encoding: base64\n\n" + "QUJD" * 250_000 + "\n--b--\n"),
    # quadratic if the boundary search resumed inside a line after each separator it finds
    "a long line full of the separator": (
        "Content-Type: multipart/mixed; boundary=-\n\n---\n\n" + "-" * 2_000_000 + "\n-----\n"),
    "rfc822 part that is empty": "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
                                 "Content-Type: message/rfc822\n\n--b--\n",
    "message/rfc822 at the root": "Content-Type: message/rfc822\n\nSubject: inner\n\ninner body\n",
    "nested rfc822 forwards": nested(10),
    "multipart whose closing boundary ends the input, with an epilogue before it": (
        "Content-Type: multipart/mixed; boundary=a\n\n--a\n"
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\nepi\n\n\n--a--\n"),
    "uppercase content type and quoted boundary with spaces": (
        'Content-Type: MULTIPART/Mixed;\n boundary="with space"\n\n--with space\n\nx\n'
        "--with space--\n"),
    "allowed transfer encoding on a multipart": (
        "Content-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: 8BIT\n\n"
        "--b\n\nx\n--b--\n"),
}

STDLIB_ONLY = {
    "missing closing boundary": "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n",
    "no opening boundary": "Content-Type: multipart/mixed; boundary=b\n\njust text\n",
    "only a closing boundary": "Content-Type: multipart/mixed; boundary=b\n\n--b--\n",
    "multipart without a boundary": "Content-Type: multipart/mixed\n\n--b\n\nx\n--b--\n",
    "base64 on a multipart": (
        "Content-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: base64\n\n"
        "--b\n\nx\n--b--\n"),
    "bare CR line endings": "Subject: x\r\rbody\rmore\r",
    "a bare CR inside a body": "Subject: x\n\nbody\rmore\n",
    "envelope line amid the headers": "Subject: x\nFrom someone\nX-A: b\n\nbody\n",
    "spaced From header after the first line": "Subject: x\nFrom : a@example.com\n\nbody\n",
    "8-bit boundary (compat32 itself does not find it)": (
        "Content-Type: multipart/mixed; boundary=\"b\xe9\"\n\n--b\xe9\n\nbody\n--b\xe9--\n"),
    "a line without a colon in the headers": "Subject: x\nnot a header\n\nbody\n",
    "first header line is a continuation": " folded\nSubject: x\n\nbody\n",
    "header line with an empty name": "Subject: x\n: no name\n\nbody\n",
    "8-bit header name": "X-Caf\xe9: x\n\nbody\n",
    "repeated boundary lines": (
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n\nx\n--b--\n"),
    "inner multipart missing its closing boundary": (
        "Content-Type: multipart/mixed; boundary=a\n\n--a\n"
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--a--\n"),
    "nesting deeper than the fast path goes": nested(60),
    "delivery-status block with a non-field line": (
        "Content-Type: message/delivery-status\n\nReporting-MTA: x\nnot a field\n"),
}


def _bytes(text: str) -> bytes:
    return text.encode("latin-1")


def _assert_same(data: bytes) -> None:
    difference = tree_difference(mime.parse(data), STDLIB.parsebytes(data))
    assert difference is None, difference


@pytest.mark.parametrize("text", FAST.values(), ids=FAST.keys())
def test_common_shapes_take_the_fast_path_and_match(text: str) -> None:
    data = _bytes(text)
    fast = mime.parse_fast(data)
    assert fast is not None, "fell back to the stdlib"
    difference = tree_difference(fast, STDLIB.parsebytes(data))
    assert difference is None, difference


@pytest.mark.parametrize("text", STDLIB_ONLY.values(), ids=STDLIB_ONLY.keys())
def test_unusual_shapes_go_to_the_stdlib(text: str) -> None:
    data = _bytes(text)
    assert mime.parse_fast(data) is None
    _assert_same(data)


def test_tree_difference_names_the_first_differing_part() -> None:
    data = _bytes(MIXED)
    tree = mime.parse(data)
    tree.get_payload(0).get_payload(1).preamble = "changed"
    assert tree_difference(tree, STDLIB.parsebytes(data)) == "root/0/1: preamble 'changed' != None"


_TOKENS = ("\n", "\r\n", "\r", "-", "--", " ", "\t", ":", "From ", "\n\n", "\x00", "\xff", '"',
           ";", "\n ", "\n--b\n", "\n--b--\n", "--outer", "\n--inner-- \n", "Content-Type: ",
           "multipart/mixed; boundary=b\n", "message/rfc822\n", "message/delivery-status\n",
           "Content-Transfer-Encoding: base64\n")


def _mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(text) + 1)
        roll = rng.random()
        if roll < 0.45:
            text = text[:pos] + rng.choice(_TOKENS) + text[pos:]
        elif roll < 0.7:
            text = text[:pos] + text[pos + rng.randint(1, 8):]
        elif roll < 0.9:  # repeat the line at pos
            start = text.rfind("\n", 0, pos) + 1
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end + 1
            text = text[:end] + text[start:end] + text[end:]
        else:
            text = text[:pos]
    return text


def test_mutated_mail_parses_as_the_stdlib_parses_it() -> None:
    """Random damage to the edge cases: whatever the fast path accepts must be exact."""
    rng = random.Random(2025)
    seeds = [text for text in [*FAST.values(), *STDLIB_ONLY.values()] if len(text) < 5_000]
    fast = 0
    for _ in range(4_000):
        data = _bytes(_mutate(rng, rng.choice(seeds)))
        tree = mime.parse_fast(data)
        if tree is not None:
            fast += 1
            difference = tree_difference(tree, STDLIB.parsebytes(data))
            assert difference is None, (data, difference)
    assert fast > 1_000  # the mutations leave many messages well-formed: the check has teeth


def test_a_bytearray_is_taken_over_and_emptied() -> None:
    """The stage hands a big message's bytes over as a bytearray: the parse empties it once
    read, and the tree (fast path or the stdlib's) is the same as from bytes."""
    usual = (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
             b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n")
    unusual = b"From: a@example.com\r\nSubject: bare\rCR\r\n\r\nbody\xe9\r\n"
    for data in (usual, unusual):
        handed = bytearray(data)
        tree = mime.parse(handed)
        assert handed == b""
        assert tree_difference(tree, STDLIB.parsebytes(data)) is None


#: Content-Type values whose type and boundary the fast path reads itself (no ``*``, ASCII),
#: and some it leaves to the stdlib.
CONTENT_TYPES = [
    'multipart/mixed; boundary="abc"', "multipart/mixed; boundary=abc",
    "Multipart/Mixed; BOUNDARY=x",
    'multipart/mixed;\n\tboundary="==_folded_=="', "multipart/mixed;boundary=a;boundary=b",
    'multipart/mixed; charset=x; boundary="q\\"uo\\\\ted"', 'multipart/mixed; boundary="  sp  "',
    "multipart/mixed; boundary=<angled>", 'multipart/mixed; boundary="<angled>"',
    'multipart/mixed; boundary=""quoted twice""', "boundary=first; x=y",
    "multipart/mixed; boundary",
    'multipart/mixed; boundary= "a;b" ', "multipart/mixed; boundary=trailing   ",
    'multipart/mixed; name="a;boundary=b"', "multipart/mixed", "", " ; ", "text/plain/x",
    "multipart/mixed; bound ary=x", 'multipart/alternative; boundary="a=b=c"',
    "multipart/mixed; boundary*=utf-8''x", "multipart/mixed; boundary*0=a; boundary*1=b",
    "multipart/mixed; boundary=caf\udcc3\udca9",
]


@pytest.mark.parametrize("value", CONTENT_TYPES)
def test_type_and_boundary_read_from_the_kept_header_as_the_stdlib_reads_them(value: str) -> None:
    from email.message import Message

    msg = Message()
    msg._headers = [("Subject", "x"), ("Content-Type", value), ("content-type", "text/html")]
    assert mime._content_type(msg, value) == msg.get_content_type()
    assert mime._boundary(msg, value) == msg.get_boundary()
    bare = Message()
    assert mime._content_type(bare, None) == bare.get_content_type()
    assert mime._boundary(bare, None) is None


def test_random_content_types_read_as_the_stdlib_reads_them() -> None:
    from email.message import Message

    rng = random.Random(7)
    alphabet = ['"', "\\", ";", "=", " ", "\t", "\n", "<", ">", "/", "a", "B", "boundary",
                "multipart/mixed", "charset", "*"]
    for _ in range(5_000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        msg = Message()
        msg._headers = [("Content-Type", value)]
        assert mime._content_type(msg, value) == msg.get_content_type(), value
        assert mime._boundary(msg, value) == msg.get_boundary(), value
