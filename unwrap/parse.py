"""Bytes to a message, and the robust decoding of what we read out of it.

Parsing uses ``policy.compat32``: on these machines it parses a forwarded message ~4-5x faster
than ``policy.default`` (FACTS.md), and it never raises on broken structure — it records defects
and carries on, which is what "a mail client would display it" needs. The price is that compat32
hands back raw header strings (8-bit bytes smuggled in as surrogates, RFC 2047 words left
encoded), so every header and body we keep goes through :func:`header_text` or
:func:`decode_bytes` here, once, and only for the fields we actually use.

Every string leaving this module is safe for PostgreSQL ``text``: NUL bytes are dropped and lone
surrogates replaced.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.utils
import quopri
import re
from email.message import Message

from unwrap import mime
from unwrap.transfer import base64_body

# Declared charsets that are very often lies: real-world mail labelled as one of these is
# frequently UTF-8 (or Windows-1252 labelled Latin-1). Valid UTF-8 with non-ASCII bytes is almost
# never intended Latin-1, so for these we try UTF-8 first.
_WEAK_CHARSETS = {"us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "iso8859-1", "cp1252",
                  "windows-1252", "unknown-8bit", "x-unknown", "unknown", "default", ""}

# Aliases mail software writes that Python's codec registry does not know.
_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "x-sjis": "shift_jis",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874", "x-mac-roman": "mac_roman", "macintosh": "mac_roman",
    "utf8": "utf-8", "unicode-1-1-utf-7": "utf-7", "ansi_x3.4-1968": "ascii",
    "x-user-defined": "cp1252", "iso-8859-1'": "iso-8859-1",
}

_ENCODED_WORD = re.compile(
    r"=\?(?P<charset>[^?\s*]+)(?:\*[^?\s]*)?\?(?P<enc>[bBqQ])\?(?P<text>[^?]*?)\?="
)
_BETWEEN_WORDS = re.compile(r"(\?=)[ \t\r\n]+(=\?)")
_FOLD = re.compile(r"\r?\n[ \t]*")
# compat32 keeps undecodable 8-bit header bytes as lone surrogates: found by a regex (C speed;
# a per-character Python loop took 23 s on a 28 MB header)
_SMUGGLED_BYTE = re.compile("[\udc80-\udcff]")


_BOM = b"\xef\xbb\xbf"


def parse_message(data: bytes) -> Message:
    """Parse message bytes; never raises on malformed mail (defects are recorded on the parts).

    The tree is exactly ``BytesParser(policy=compat32)``'s; :mod:`unwrap.mime` builds it
    without the stdlib's line-by-line machinery when the message has a common shape."""
    return parse_with_notes(data)[0]


def parse_with_notes(data: bytes) -> tuple[Message, list[str]]:
    """:func:`parse_message`, first repairing two things that cost every header, and saying so.

    * a UTF-8 byte order mark before the first header (editors and some exporters write one):
      the parser would read the first line as no header, end the header block there and lose
      every header;
    * CR-only line ends (old Mac mail, some gateways): the parser ends lines at a lone CR but
      keeps it in the values it reads. Turned into LF before parsing, such a message also takes
      the fast path (mime.py leaves bare CRs to the stdlib)."""
    notes: list[str] = []
    if data.startswith(_BOM):
        data = data[len(_BOM):]
        notes.append("a UTF-8 byte order mark before the first header was removed")
    if b"\r" in data and b"\n" not in data:
        data = data.replace(b"\r", b"\n")
        notes.append("lines ended with CR only: read as LF line ends")
    return mime.parse(data), notes


def clean(text: str) -> str:
    """Make a string storable as PostgreSQL text: drop NULs, replace lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def codec_for(charset: str | None) -> str | None:
    """A Python codec name for a declared charset, or None when it is unknown."""
    if not charset:
        return None
    name = charset.strip().strip('"').strip("'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode text bytes whatever the label says: declared charset, lying labels, no label."""
    declared = (charset or "").strip().strip('"').lower()
    if declared in _WEAK_CHARSETS or declared.startswith("unknown"):
        try:
            return clean(data.decode("utf-8"))
        except UnicodeDecodeError:
            return clean(data.decode("cp1252", "replace"))
    codec = codec_for(declared)
    if codec is not None:
        try:
            return clean(data.decode(codec))
        except (UnicodeDecodeError, LookupError, ValueError):
            pass
    try:
        return clean(data.decode("utf-8"))
    except UnicodeDecodeError:
        if codec is not None:
            try:
                return clean(data.decode(codec, "replace"))
            except (LookupError, ValueError):
                pass
        return clean(data.decode("cp1252", "replace"))


def _decode_word(charset: str, enc: str, text: str) -> bytes:
    if enc in "bB":
        text = re.sub(r"[^A-Za-z0-9+/]", "", text)
        text += "=" * (-len(text) % 4)
        try:
            return base64.b64decode(text)
        except (binascii.Error, ValueError):
            return base64.b64decode(text[: len(text) // 4 * 4] or b"")
    return quopri.decodestring(text.replace("_", " ").encode("ascii", "replace"), header=False)


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded-words, also where senders put them illegally (inside quotes,
    mid-word) since clients display those too. Adjacent words in one charset are joined
    before decoding so multi-byte characters split across words survive."""
    if "=?" not in value:
        return value
    value = _BETWEEN_WORDS.sub(r"\1\2", value)
    out: list[str] = []
    pos = 0
    pending: list[bytes] = []
    pending_charset = ""
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos:match.start()]
        charset = match.group("charset")
        if (gap or charset.lower() != pending_charset) and pending:
            out.append(decode_bytes(b"".join(pending), pending_charset))
            pending = []
        out.append(gap)
        pending.append(_decode_word(charset, match.group("enc"), match.group("text")))
        pending_charset = charset.lower()
        pos = match.end()
    if pending:
        out.append(decode_bytes(b"".join(pending), pending_charset))
    out.append(value[pos:])
    return "".join(out)


def header_text(raw: object) -> str:
    """One header's display text: unfolded, 8-bit bytes and RFC 2047 words decoded, clean."""
    if raw is None:
        return ""
    if not isinstance(raw, str):  # compat32 may hand back a Header object for odd input
        raw = str(raw)
    value = _FOLD.sub(" ", raw)
    if _SMUGGLED_BYTE.search(value):
        # compat32 keeps undecodable 8-bit header bytes as surrogate escapes: recover the bytes
        value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    return clean(decode_words(value).strip())


def raw_value(msg: Message, name: str) -> str | None:
    """The first ``name`` header exactly as parsed. ``msg.get`` would not do: compat32 turns a
    value with 8-bit bytes into a Header whose str() has lost them to replacement characters."""
    name = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == name:
            return value if isinstance(value, str) else str(value)
    return None


def first_raw(msg: Message, names: frozenset[str]) -> dict[str, str]:
    """The first raw value of each header in ``names`` (lower case), in one pass over the
    headers: what per-email checks read, without one scan of the header list per name."""
    found: dict[str, str] = {}
    for key, value in msg.raw_items():
        lower = key.lower()
        if lower in names and lower not in found:
            found[lower] = value if isinstance(value, str) else str(value)
    return found


def quick_text(raw: str | None) -> str:
    """:func:`header_text` for a test by pattern: plain ASCII without encoded words (most
    headers) is returned as it is, skipping the decoding work."""
    if not raw:
        return ""
    if raw.isascii() and "=?" not in raw:
        return raw
    return header_text(raw)


def header(msg: Message, name: str) -> str:
    """The first ``name`` header's display text, or '' (never raises)."""
    return header_text(raw_value(msg, name))


def raw_header(msg: Message, name: str, limit: int | None = None) -> str:
    """The first ``name`` header unfolded but not RFC 2047 decoded (addresses, ids); with
    ``limit``, only about that many characters of it are looked at (a huge header is not
    unfolded and scanned whole only to be cut)."""
    raw = raw_value(msg, name)
    if raw is None:
        return ""
    if limit is not None:
        raw = raw[: limit + 1024]  # room for folding whitespace that unfolding removes
    value = _FOLD.sub(" ", raw).strip()
    if _SMUGGLED_BYTE.search(value):
        value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    return clean(value)


def content_type(part: Message) -> str:
    """The lower-cased maintype/subtype; text/plain when missing or malformed (RFC 2045)."""
    try:
        ctype = part.get_content_type()
    except Exception:  # noqa: BLE001 - a broken header means the default, as for clients
        return "text/plain"
    return ctype if "/" in ctype else "text/plain"


def param(part: Message, name: str, header_name: str = "content-type") -> str:
    """A header parameter (RFC 2231 continuations and charsets, RFC 2047 in quotes), or ''."""
    raw = raw_value(part, header_name)
    if not raw or "=" not in raw:
        return ""
    try:
        # the stdlib's own parameter splitting, applied to the raw value (see raw_value)
        pairs = []
        for item in _split_params(_FOLD.sub(" ", raw).split(";", 1)[1]):
            key, sep, val = item.partition("=")
            if sep:
                pairs.append((key.strip().lower(), val.strip()))
        params = email.utils.decode_params([("", "")] + pairs)[1:]
    except Exception:  # noqa: BLE001 - malformed parameters read as absent
        return ""
    name = name.lower()
    for key, value in params:
        if key != name:
            continue
        if isinstance(value, tuple):
            charset, _lang, text = value
            text = email.utils.unquote(text) if isinstance(text, str) else ""
            data = text.encode("raw-unicode-escape", "replace")
            return header_text(decode_bytes(data, charset or "utf-8"))
        return header_text(email.utils.unquote(str(value)))
    return ""


def _split_params(text: str) -> list[str]:
    """``a=1; b="x;y"`` -> ``['a=1', 'b="x;y"']``: split at the semicolons outside quoted
    strings, names lower-cased, as the stdlib's own parameter parsing does."""
    items = []
    rest = ";" + text
    while rest[:1] == ";":
        rest = rest[1:]
        end = rest.find(";")
        # Inside an open quote (an odd number of unescaped quotes before it): not a separator.
        while end > 0 and (rest.count('"', 0, end) - rest.count('\\"', 0, end)) % 2:
            end = rest.find(";", end + 1)
        if end < 0:
            end = len(rest)
        item = rest[:end]
        if "=" in item:
            name, _, value = item.partition("=")
            item = name.strip().lower() + "=" + value.strip()
        items.append(item.strip())
        rest = rest[end:]
    return items


def filename(part: Message) -> str:
    """The attachment's file name from Content-Disposition or Content-Type, or ''."""
    return param(part, "filename", "content-disposition") or param(part, "name")


def payload_bytes(part: Message) -> bytes:
    """A leaf part's decoded body bytes (base64, quoted-printable, uuencode), never raising."""
    data = base64_body(part)  # the stdlib's bytes with a third of its peak memory
    if data is not None:
        return data
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a broken transfer encoding yields the raw text
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def part_text(part: Message) -> str:
    """A text part's decoded body as str."""
    return decode_bytes(payload_bytes(part), param(part, "charset") or None)


# A From field written with whitespace before its colon ("From : x", obsolete syntax that RFC
# 5322 section 4.5.3 still allows). compat32 does not read it as From: as the first line it is
# taken for an mbox "From " line, later on it is a defect or ends the header block. A server
# or client that does read it sees a different sender than we do.
_SPACED_FROM = re.compile(rb"^from[ \t]+:", re.IGNORECASE | re.MULTILINE)
_SPACED_FROM_TEXT = re.compile(r"^from[ \t]+:", re.IGNORECASE)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def spaced_from_in_header(data: bytes) -> bool:
    """Does the header block of ``data`` (up to the first blank line) hold a ``From :`` line?"""
    end = _BLANK_LINE.search(data)
    return _SPACED_FROM.search(data, 0, end.start() if end else len(data)) is not None


def from_line_dropped(msg: Message) -> bool:
    """Did parsing ``msg`` drop a ``From :`` line (see :func:`spaced_from_in_header`)?"""
    if _SPACED_FROM_TEXT.match(msg.get_unixfrom() or ""):
        return True
    if any(_SPACED_FROM_TEXT.match(str(getattr(d, "line", "") or "")) for d in msg.defects):
        return True
    # The line ended the header block: it is now the first line of the body or preamble.
    payload = msg.get_payload() if not msg.is_multipart() else msg.preamble
    return isinstance(payload, str) and _SPACED_FROM_TEXT.match(payload.lstrip("\r\n")) is not None
