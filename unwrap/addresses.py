"""Strict address parsing: the addresses that decide trust must mean exactly one thing.

The standard library of the Python 3.11.7 here misreads crafted address headers
(CVE-2023-27043: ``getaddresses`` may return an address other than the one the mail shows), and
its ``strict=`` switch only exists from 3.11.10/3.12.6 on — not here. So this module tokenises
RFC 5322 ``address-list`` itself and refuses anything ambiguous: an '@' in an unquoted display
name, unbalanced quotes, comments or angle brackets, two addresses where one is expected.

Two modes:

* ``strict`` (trust decisions — who forwarded this): RFC 5322 names and addresses, nothing else.
* relaxed names (display fields — To, Cc): a display name may contain stray specials such as
  '@' or ':' (clients show such mail), but the address inside ``<...>`` is still parsed strictly
  and an entry that stays ambiguous is dropped and reported, never guessed.

Display names are RFC 2047-decoded only *after* the structure is parsed, so an encoded word that
decodes to ``<eve@evil.example>`` can never change which address was meant.

Case is folded ASCII-only (:func:`ascii_lower`). ``str.lower`` maps some non-ASCII letters onto
ASCII ones (the Kelvin sign U+212A becomes ``k``), which would make ``\u212aarl@corp.example``
compare equal to the forwarder ``karl@corp.example``; a non-ASCII letter must stay itself.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mailroom.records.email import Address
from unwrap.parse import decode_words

_ATEXT_EXTRA = set("!#$%&'*+-/=?^_`{|}~")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SPECIALS = set('()<>[]:;@\\,."')


def ascii_lower(text: str) -> str:
    """``text`` with A-Z lower-cased and every other character unchanged."""
    return text.translate(_ASCII_LOWER)


class AddressError(ValueError):
    """The header does not parse as an address (list) under the requested rules."""


class _Tok(NamedTuple):
    """A token. A tuple: a few are made for every address, and a frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__``."""

    kind: str  # 'atom', 'qs' (quoted string), 'lit' (domain literal), or the special char
    text: str
    spaced: bool = False  # whitespace or a comment came before it (display names keep it)


def _is_atext(ch: str) -> bool:
    return ch.isalnum() or ch in _ATEXT_EXTRA or ord(ch) > 127


#: A run of what :func:`_is_atext` accepts (ASCII letters and digits, the extras, anything past
#: ASCII), read in one step instead of a call per character.
_ATEXT_RUN = re.compile("[A-Za-z0-9" + re.escape("".join(sorted(_ATEXT_EXTRA)))
                        + "\x80-\U0010ffff]+")


def _tokenise(value: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(value)
    space = False  # whitespace or a comment since the last token

    def add(kind: str, text: str) -> None:
        nonlocal space
        toks.append(_Tok(kind, text, space))
        space = False

    while i < n:
        ch = value[i]
        if ch in " \t\r\n":
            i += 1
            space = True
        elif ch == "(":
            depth = 1
            i += 1
            while i < n and depth:
                if value[i] == "\\":
                    i += 1
                elif value[i] == "(":
                    depth += 1
                elif value[i] == ")":
                    depth -= 1
                i += 1
            if depth:
                raise AddressError("unterminated comment")
            space = True
        elif ch == '"':
            i += 1
            buf: list[str] = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(value[i])
                i += 1
            if i >= n:
                raise AddressError("unterminated quoted string")
            i += 1
            add("qs", "".join(buf))
        elif ch == "[":
            end = value.find("]", i)
            if end < 0 or "[" in value[i + 1:end]:
                raise AddressError("unterminated domain literal")
            add("lit", value[i:end + 1])
            i = end + 1
        elif ch in _SPECIALS:
            if ch in ")]\\":
                raise AddressError(f"stray {ch!r}")
            add(ch, ch)
            i += 1
        elif (run := _ATEXT_RUN.match(value, i)) is not None:
            i = run.end()
            add("atom", run[0])
        else:
            raise AddressError(f"character {ch!r} not allowed")
    return toks


def _quote_local(local: str) -> str:
    if local and all(_is_atext(c) or c == "." for c in local) and ".." not in local \
            and not local.startswith(".") and not local.endswith("."):
        return local
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _addr_spec(toks: list[_Tok]) -> str:
    """local-part '@' domain from exactly these tokens; domain lower-cased (ASCII only)."""
    at = [i for i, t in enumerate(toks) if t.kind == "@"]
    if len(at) != 1:
        raise AddressError("an address needs exactly one '@'")
    local_toks, domain_toks = toks[:at[0]], toks[at[0] + 1:]
    if len(local_toks) == 1 and local_toks[0].kind == "qs":
        local = local_toks[0].text
    else:
        local = _dot_atom(local_toks, "local part")
    if len(domain_toks) == 1 and domain_toks[0].kind == "lit":
        domain = domain_toks[0].text
    else:
        domain = _dot_atom(domain_toks, "domain")
        labels = domain.split(".")
        if any(not lab or lab.startswith("-") or lab.endswith("-") for lab in labels):
            raise AddressError("malformed domain")
    if not local:
        raise AddressError("empty local part")
    return f"{_quote_local(local)}@{ascii_lower(domain)}"


def _dot_atom(toks: list[_Tok], what: str) -> str:
    if not toks or len(toks) % 2 == 0:
        raise AddressError(f"malformed {what}")
    for i, tok in enumerate(toks):
        if tok.kind != ("atom" if i % 2 == 0 else "."):
            raise AddressError(f"malformed {what}")
    return "".join(t.text for t in toks)


def _phrase(toks: list[_Tok], relaxed: bool) -> str:
    allowed = {"atom", "qs", "."} | ({"@", ":", ";", "lit"} if relaxed else set())
    if any(t.kind not in allowed for t in toks):
        raise AddressError("display name needs quoting")
    out = ""
    for tok in toks:
        out += (" " if tok.spaced and out else "") + tok.text
    # decoded only now, after the structure is settled: a decoded '<' or ',' changes nothing
    return decode_words(out).strip()


def _mailbox(toks: list[_Tok], relaxed: bool) -> Address:
    opens = [i for i, t in enumerate(toks) if t.kind == "<"]
    closes = [i for i, t in enumerate(toks) if t.kind == ">"]
    if not opens and not closes:
        return Address(name="", address=_addr_spec(toks))
    if len(opens) != 1 or len(closes) != 1 or closes[0] != len(toks) - 1 or opens[0] > closes[0]:
        raise AddressError("angle brackets do not enclose exactly one address at the end")
    inner = toks[opens[0] + 1:closes[0]]
    if ":" in [t.kind for t in inner]:  # obs-route "@a,@b:" before the addr-spec: drop it
        inner = inner[[t.kind for t in inner].index(":") + 1:]
    return Address(name=_phrase(toks[:opens[0]], relaxed), address=_addr_spec(inner))


def _split(toks: list[_Tok], sep: str) -> list[list[_Tok]]:
    parts: list[list[_Tok]] = [[]]
    angle = False
    for tok in toks:
        if tok.kind == "<":
            angle = True
        elif tok.kind == ">":
            angle = False
        if tok.kind == sep and not angle:
            parts.append([])
        else:
            parts[-1].append(tok)
    return parts


def parse_mailbox(value: str) -> Address:
    """Exactly one mailbox, strictly (trust decisions). Raises AddressError otherwise."""
    toks = _tokenise(value)
    if any(t.kind in {",", ";"} for t in toks):
        raise AddressError("more than one address where one is expected")
    if toks and toks[0].kind != "<" and ":" in [t.kind for t in toks if t.kind != "lit"]:
        raise AddressError("a group where one mailbox is expected")
    return _mailbox(toks, relaxed=False)


def parse_address_list(value: str) -> tuple[list[Address], list[str]]:
    """An address list with relaxed display names: (addresses, problems). Never raises.

    Groups are flattened (``undisclosed-recipients:;`` gives nothing); entries that do not parse
    are left out and described in the problems list instead of being guessed at.
    """
    problems: list[str] = []
    try:
        toks = _tokenise(value)
    except AddressError as exc:
        return [], [f"unparseable address list ({exc}): {value[:200]!r}"]
    result: list[Address] = []
    for entry in _split(toks, ","):
        if not entry:
            continue
        kinds = [t.kind for t in entry]
        if ":" in kinds and "<" not in kinds[: kinds.index(":")] and "@" not in kinds[
                : kinds.index(":")]:
            entry = entry[kinds.index(":") + 1:]  # group display name: drop it
        if entry and entry[-1].kind == ";":
            entry = entry[:-1]
        for member in _split(entry, ";"):
            if not member:
                continue
            try:
                result.append(_mailbox(member, relaxed=True))
            except AddressError as exc:
                problems.append(f"unparseable address ({exc}): "
                                f"{''.join(t.text for t in member)[:200]!r}")
    return result, problems
