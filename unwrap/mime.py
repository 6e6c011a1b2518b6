"""Bytes to the same ``email.message.Message`` tree as the stdlib's compat32 parser, faster.

``email.parser.BytesParser(policy=compat32)`` feeds the text line by line through a stack of
generators and tests every line of every part, long base64 bodies included, against every open
multipart's boundary regex (compiled afresh for each boundary, so the ``re`` cache never helps).
For well-formed mail the result is fully determined by a few facts — where the header blocks
end and where the boundary lines are — and those are found here with ``str.find`` and one regex
per header over the whole text.

The fast path builds the tree exactly as ``email.feedparser.FeedParser`` would (``_headers``
through compat32's header rules, payloads, preambles, epilogues, the trailing newline that RFC
2046 gives to the boundary, message/rfc822 children, multipart/digest default types,
message/delivery-status blocks). Whenever the input has a shape whose FeedParser result it does
not reproduce — anything that would record a defect, a bare CR line ending, repeated boundary
lines, deep nesting — it gives up and the stdlib parses the whole message, so the result is
always the stdlib's.
"""

from __future__ import annotations

import email.parser
import email.utils
import re
from email import policy
from email.message import Message, _parseparam  # type: ignore[attr-defined]

_STDLIB = email.parser.BytesParser(policy=policy.compat32)

# One header: a field name (FeedParser's headerRE: printable ASCII but ':' and space), its
# value from after the colon and the blanks that follow it, and its continuation lines.
_HEADER = re.compile(r"([\041-\071\073-\176]+):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)(?:\n|\Z)")
_BARE_CR = re.compile("\r(?!\n)")
_MULTIPART_ENCODINGS = ("7bit", "8bit", "binary")
# Deeper nesting goes to the stdlib, which then behaves (or runs out of stack) as it always has.
_MAX_DEPTH = 40


class _Unusual(Exception):
    """The input has a shape the fast path does not reproduce: the stdlib parses it."""


def parse(data: bytes | bytearray) -> Message:
    """Parse message bytes exactly as ``BytesParser(policy=compat32).parsebytes`` does.

    A ``bytearray`` is taken over: emptied as soon as it is read, so a big message is not held
    as bytes beside its text and its parts while the tree is built (unwrap's stage hands the
    bytes of a claim-checked message over this way)."""
    text = data.decode("ascii", "surrogateescape")
    taken = isinstance(data, bytearray)
    if taken:
        data.clear()
    msg = _fast(text)
    if msg is not None:
        return msg
    # The stdlib reads bytes: the same bytes again from the text (surrogateescape round-trips).
    raw = text.encode("ascii", "surrogateescape") if taken else data
    del text
    return _STDLIB.parsebytes(raw)


def parse_fast(data: bytes) -> Message | None:
    """The stdlib's tree for ``data`` built by the fast path, or None when the message has a
    shape the fast path leaves to the stdlib."""
    return _fast(data.decode("ascii", "surrogateescape"))


def _fast(text: str) -> Message | None:
    # FeedParser also ends lines at a lone CR; here lines end only at LF (or CRLF).
    if "\r" in text and _BARE_CR.search(text):
        return None
    try:
        return _part(text, 0, len(text), False, 0)[0]
    except _Unusual:
        return None


def _part(text: str, start: int, end: int, in_digest: bool, depth: int,
          trim: bool = False) -> tuple[Message, Message | None]:
    """The message in ``text[start:end]`` and the part whose content runs to ``end`` (the one
    that loses its last newline to the enclosing boundary, FeedParser's ``_last``).

    ``trim``: a boundary line follows. A leaf is then cut before that newline as it is sliced
    (a big body copied once, not twice) and None is returned in its place: nothing is left to
    give to the boundary."""
    if depth > _MAX_DEPTH:
        raise _Unusual
    msg = Message()
    if in_digest:
        msg.set_default_type("message/rfc822")
    body, raw_ctype = _read_headers(msg, text, start, end)
    ctype = _content_type(msg, raw_ctype)
    if ctype == "message/delivery-status":
        return _delivery_status(msg, text, body, end)
    maintype = ctype.split("/")[0]
    if maintype == "message":
        inner, last = _part(text, body, end, False, depth + 1, trim)
        msg._payload = [inner]  # noqa: SLF001 - as Message.attach would set it
        return msg, last
    if maintype == "multipart":
        _multipart(msg, ctype, raw_ctype, text, body, end, depth)
        return msg, msg
    # as set_payload(str) sets it
    msg._payload = text[body:_eol_start(text, body, end) if trim else end]  # noqa: SLF001
    return msg, None if trim else msg


def _read_headers(msg: Message, text: str, pos: int, end: int) -> tuple[int, str | None]:
    """Read the header block at ``pos`` into ``msg``; where its body starts, and the value of
    its first Content-Type header (what ``msg.get("content-type")`` reads), None if it has
    none."""
    if text.startswith("From ", pos, end):  # an mbox envelope line, only as the first line
        nl = text.find("\n", pos, end)
        line_end = end if nl < 0 else nl
        line = text[pos:line_end]
        msg.set_unixfrom(line[:-1] if line.endswith("\r") else line)
        pos = end if nl < 0 else nl + 1
    headers: list[tuple[str, str]] = []
    ctype: str | None = None
    match = _HEADER.match
    while (found := match(text, pos, end)) is not None:
        # compat32's header_source_parse: the value keeps its folding, loses trailing CR/LF
        name, value = found[1], found[2].rstrip("\r\n")
        headers.append((name, value))
        if ctype is None and len(name) == 12 and name.lower() == "content-type":
            ctype = value
        pos = found.end()
    msg._headers = headers  # noqa: SLF001 - the list set_raw appends to
    if pos == end:  # the part ends with its headers: no body
        return end, ctype
    if text[pos] == "\n":
        return pos + 1, ctype
    if text.startswith("\r\n", pos):
        return pos + 2, ctype
    # Not a header, not a blank line: a defect (or an envelope line out of place) to FeedParser.
    raise _Unusual


def _content_type(msg: Message, raw: str | None) -> str:
    """``msg.get_content_type()`` from the header value ``_read_headers`` kept, without looking
    the header up again (twice or more per part, each a scan of every header name)."""
    if raw is None:
        return msg.get_default_type()
    if not raw.isascii():  # compat32 hands out 8-bit values as a Header object: its own way
        return msg.get_content_type()
    ctype = raw.partition(";")[0].strip().lower()  # as email.message._splitparam
    return ctype if ctype.count("/") == 1 else "text/plain"


def _boundary(msg: Message, raw: str | None) -> str | None:
    """``msg.get_boundary()`` from the kept header value, step for step as the stdlib takes it
    (``get_param`` → ``_get_params_preserve`` → ``decode_params`` → ``collapse_rfc2231_value``)
    for a value with no RFC 2231 parameter (no ``*``): a fifth of the parse's time went to the
    stdlib's general path. Anything else is the stdlib's."""
    if raw is None or "*" in raw or not raw.isascii():
        return msg.get_boundary()
    for i, param in enumerate(_parseparam(raw)):
        name, sep, value = param.partition("=")
        name, value = (name.strip(), value.strip()) if sep else (param.strip(), "")
        if name.lower() != "boundary":
            continue
        if i:  # decode_params re-quotes every parameter but the first
            value = f'"{email.utils.quote(email.utils.unquote(value))}"'
        return email.utils.unquote(email.utils.unquote(value)).rstrip()
    return None


def _multipart(msg: Message, ctype: str, raw_ctype: str | None, text: str, body: int, end: int,
               depth: int) -> None:
    boundary = _boundary(msg, raw_ctype)
    if boundary is None or "\n" in boundary or "\r" in boundary:
        raise _Unusual
    if str(msg.get("content-transfer-encoding", "8bit")).lower() not in _MULTIPART_ENCODINGS:
        raise _Unusual
    separator = "--" + boundary
    digest = ctype == "multipart/digest"
    found = _boundary_line(text, separator, body, end)
    if found is None or found[2]:  # no opening boundary, or only a closing one
        raise _Unusual
    start, line_end, _close = found
    if start > body:
        msg.preamble = _strip_eol(text[body:start])
    parts: list[Message] = []
    while True:
        found = _boundary_line(text, separator, line_end, end)
        # No closing boundary, or boundary lines one after another (FeedParser skips them).
        if found is None or found[0] == line_end:
            raise _Unusual
        child, last = _part(text, line_end, found[0], digest, depth + 1, True)
        parts.append(child)
        if last is not None:
            _give_newline_to_boundary(last)
        _start, line_end, close = found
        if close:
            break
    msg._payload = parts  # noqa: SLF001 - as Message.attach would build it
    msg.epilogue = text[line_end:end]


def _boundary_line(text: str, separator: str, pos: int, end: int) -> tuple[int, int, bool] | None:
    """The first line in ``text[pos:end]`` (``pos`` at a line start) that FeedParser's boundary
    regex matches: ``separator``, optionally ``--``, blanks, the line end. Its start, where the
    next line starts, and whether it is the closing boundary."""
    skip = len(separator)
    while (start := text.find(separator, pos, end)) >= 0:
        nl = text.find("\n", start, end)
        line_end = end if nl < 0 else nl + 1
        if start == 0 or text[start - 1] == "\n":
            rest = text[start + skip:line_end]
            close = rest.startswith("--")
            if rest.removeprefix("--" if close else "").lstrip(" \t") in ("", "\n", "\r\n"):
                return start, line_end, close
        # A boundary starts a line: the next candidate is on the next line (resuming inside
        # this one would make a long line full of the separator quadratic).
        pos = line_end
    return None


def _eol_start(text: str, start: int, end: int) -> int:
    """Where ``text[start:end]`` ends without its last line end: ``_strip_eol`` as an index."""
    if end - start >= 2 and text.startswith("\r\n", end - 2):
        return end - 2
    return end - 1 if end > start and text[end - 1] == "\n" else end


def _strip_eol(value: str) -> str:
    if value.endswith("\r\n"):
        return value[:-2]
    return value[:-1] if value.endswith("\n") else value


def _give_newline_to_boundary(last: Message) -> None:
    """RFC 2046: the newline before a boundary line belongs to the boundary (FeedParser's own
    rule: a multipart's epilogue or a leaf's payload loses it, an empty epilogue becomes None)."""
    if isinstance(last._payload, list):  # noqa: SLF001 - a multipart (message/* is never last)
        epilogue = last.epilogue
        if epilogue == "":
            last.epilogue = None
        elif epilogue is not None:
            last.epilogue = _strip_eol(epilogue)
    elif isinstance(last._payload, str):  # noqa: SLF001
        last._payload = _strip_eol(last._payload)  # noqa: SLF001


def _delivery_status(msg: Message, text: str, pos: int,
                     end: int) -> tuple[Message, Message]:
    """message/delivery-status: each blank-line separated block of fields is a message with
    headers only (FeedParser reads them with a blank line as the end of every block)."""
    blocks: list[Message] = []
    while True:
        block = Message()
        pos = _read_headers(block, text, pos, end)[0]
        if block.get_content_maintype() in ("message", "multipart"):
            raise _Unusual
        block._payload = ""  # noqa: SLF001
        blocks.append(block)
        if pos == end:
            break
    msg._payload = blocks  # noqa: SLF001
    return msg, blocks[-1]
