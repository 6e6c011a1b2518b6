"""Authentication-Results (RFC 8601): which header to believe, and does it pass for a domain?

The receiving server of the forward mailbox checks DMARC, DKIM and SPF and writes the outcome
into an ``Authentication-Results`` header that starts with its *authserv-id*. Anyone can write
such a header into a message, so only one header counts: the topmost whose authserv-id is our
receiving server's (``unwrap_authserv_id``). That server prepends its own and is expected to
remove incoming ones claiming its id (RFC 8601 section 5); a forged one further down is never
read, because the search stops at the topmost header with our id, readable or not.

Parsing is the ``authres`` package's RFC 8601 grammar in its strict mode (quoted strings,
comments and quoted-pairs honoured: ``smtp.mailfrom="x;dmarc=pass"@evil.example`` is one value,
not a ``dmarc=pass``). The plain shape nearly every server writes — no comment, no quoted
string — is read by :func:`_plain`, which takes the package's steps with its character
classes but without its parser's cost, and leaves every other shape to the package (a
differential test keeps the two in step). A header that does not parse completely is
*unreadable*, which fails — never "read what we could". Headers over :data:`MAX_HEADER_CHARS`
are unreadable too: the package's parser is quadratic in the header's length, and no real
server writes one that long.

The verdict (:func:`verdict`) for the From domain ``d``:

* any ``dmarc`` result that is not ``pass`` and not a "no verdict" (none, temperror, permerror):
  fail; ``dmarc=pass`` together with any other dmarc result: conflicting, fail;
* ``dmarc=pass`` whose ``header.from`` is ``d``: pass (without ``header.from`` it is not known
  which domain passed: fail);
* no DMARC verdict: a ``dkim=pass`` whose ``header.d`` is ``d``, or an ``spf=pass`` whose
  ``smtp.mailfrom`` domain is ``d`` (strict alignment: the public suffix list is not consulted,
  so a parent domain does not count) — unless the same method also shows a non-pass result for
  ``d``: conflicting, fail;
* anything else: fail. An unaligned pass (``dkim=pass header.d=evil.example``) proves nothing.

Domains compare ASCII-case-insensitively (:func:`unwrap.addresses.ascii_lower`): ``str.lower``
would fold the Kelvin sign into ``k`` and make a different domain look like ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

import authres
import authres.core

from unwrap.addresses import ascii_lower

#: Longest Authentication-Results value parsed (characters, unfolded). Real ones are < 2,000.
MAX_HEADER_CHARS = 16_384

#: DMARC results that mean "DMARC gave no verdict" rather than "DMARC failed".
_DMARC_NO_VERDICT = {"none", "temperror", "permerror"}
#: Results that mean "this method has nothing to say" (no signature, no record).
_SILENT = {"none"}
_FOLD = re.compile(r"\r?\n[ \t]*")
# authserv-id is a dot-atom (RFC 5322 atext) after optional whitespace and comments; the
# cheap look at it decides which header is ours before the full parse.
_LEADING_COMMENT = re.compile(r"^\s*(?:\((?:[^()\\]|\\.)*\)\s*)*")
_ATEXT_RUN = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+")


class _StrictHeader(authres.core.AuthenticationResultsHeader):
    """``authres``'s header in strict mode: a property that does not parse is an error
    instead of being skipped along with whatever followed it."""

    def __init__(self, feature_context: object, **kwargs: object) -> None:
        kwargs.setdefault("strict", True)
        super().__init__(feature_context, **kwargs)

    def _parse_pattern(self, pattern: str | re.Pattern[str]) -> re.Match[str] | None:
        """The package's own method, with its patterns compiled once. It passes pattern text
        and compiled ``^pattern`` with IGNORECASE on every call (~290 calls per header): that
        leaned on ``re``'s cache, which the email parser's one-off boundary patterns keep
        flushing, so most headers recompiled them — a fifth of unwrap's time."""
        if isinstance(pattern, str):
            compiled = _PATTERNS.get(pattern)
            if compiled is None:
                if len(_PATTERNS) >= _MAX_PATTERNS:  # the package's set is small and fixed
                    _PATTERNS.clear()
                compiled = _PATTERNS[pattern] = re.compile(r"^" + pattern, re.I)
            pattern = compiled
        found: list[re.Match[str]] = []

        def matched(m: re.Match[str]) -> str:
            found.append(m)
            return ""

        self._parse_text = pattern.sub(matched, self._parse_text, 1)
        return found[0] if found else None


_PATTERNS: dict[str, re.Pattern[str]] = {}
_MAX_PATTERNS = 512


_CONTEXT = authres.FeatureContext()  # the core methods; any other parses generically

# The plain shape nearly every receiving server writes, read without the package's parser
# (which rewrites the remaining text with one ``re.sub`` per grammar step: ~290 a header, a
# quarter of a forward's unwrap). Its character classes, whitespace and order of steps are the
# package's own, step for step (``authres.core``), so what the reader accepts it reads exactly
# as the package would; anything else — a comment, a quoted string, a version, ``none``,
# ``reason=``, a ptype the package refuses, an empty value, a stray character — is left to the
# package, which then parses it or refuses it as before. A differential test holds the two
# together.
_KTEXT = r"[A-Za-z0-9!#$%&'*+?^_`{|}~-]"
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_WSP = re.compile(r"[\t ]*")
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_DOT_KEY_ATOM = re.compile(rf"{_KTEXT}+(?:\.{_KTEXT}+)*")
_KEY_ATOM = re.compile(rf"{_KTEXT}+")
_PTEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]*")
_LEFT_TO_THE_PACKAGE = re.compile(r'[()"\\\r\n]')
# Prefixes the package tests for, case-insensitively, where a method or a property may start.
_NONE = re.compile("none", re.I)
_REASON = re.compile("reason", re.I)
_PTYPES = frozenset({"smtp", "header", "body", "policy"})

_Props = list[authres.core.AuthenticationResultProperty]


def _plain(value: str) -> tuple[str, list[authres.core.AuthenticationResult]] | None:
    """(authserv-id, results) of a header of the plain shape; None: the package decides."""
    if _LEFT_TO_THE_PACKAGE.search(value):
        return None
    text = value.rstrip("\r\n\t ")
    end = len(text)
    found = _DOT_ATOM.match(text, _WSP.match(text).end())  # type: ignore[union-attr]
    if found is None:
        return None
    authserv_id = found.group()
    pos = _WSP.match(text, found.end()).end()  # type: ignore[union-attr]
    results = []
    while pos < end:
        if text[pos] != ";":
            return None  # a version after the authserv-id, or what does not parse
        pos = _WSP.match(text, pos + 1).end()  # type: ignore[union-attr]
        if _NONE.match(text, pos):
            return None
        method = _DOT_KEY_ATOM.match(text, pos)
        if method is None:
            return None
        pos = _WSP.match(text, method.end()).end()  # type: ignore[union-attr]
        if not text.startswith("=", pos):
            return None  # "/version", or what does not parse
        result = _DOT_ATOM.match(text, _WSP.match(text, pos + 1).end())  # type: ignore[union-attr]
        if result is None:
            return None
        pos = _WSP.match(text, result.end()).end()  # type: ignore[union-attr]
        if _REASON.match(text, pos):
            return None
        props: _Props = []
        while pos < end and text[pos] != ";":
            pos = _property(text, pos, props)
            if pos < 0:
                return None
        results.append(_CONTEXT.result(method.group(), None, result.group(), None, None, None,
                                       props))
    return (authserv_id, results) if results else None


def _property(text: str, pos: int, props: _Props) -> int:
    """One ``ptype.property=value`` at ``pos`` into ``props``; where the next starts, or -1
    when it is not of the plain shape."""
    ptype = _KEY_ATOM.match(text, pos)
    if ptype is None or ptype.group().lower() not in _PTYPES:
        return -1
    pos = _WSP.match(text, ptype.end()).end()  # type: ignore[union-attr]
    if not text.startswith(".", pos):
        return -1
    name = _DOT_KEY_ATOM.match(text, _WSP.match(text, pos + 1).end())  # type: ignore[union-attr]
    if name is None:
        return -1
    pos = _WSP.match(text, name.end()).end()  # type: ignore[union-attr]
    if not text.startswith("=", pos):
        return -1
    pos = _WSP.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text.startswith("@", pos):  # "@" domain-name, as DKIM's header.i=@example.com
        domain = _DOT_ATOM.match(text, pos + 1)
        if domain is None:
            return -1
        value, pos = "@" + domain.group(), domain.end()
    else:
        ptext = _PTEXT.match(text, pos)
        assert ptext is not None  # matches the empty string
        value, pos = ptext.group(), ptext.end()
        if not value:
            return -1
    props.append(authres.core.AuthenticationResultProperty(ptype.group(), name.group(), value))
    return _WSP.match(text, pos).end()  # type: ignore[union-attr]


@dataclass(frozen=True)
class MethodResult:
    method: str  # lower case: dkim, spf, dmarc, ...
    result: str  # lower case: pass, fail, none, ...
    props: dict[str, str]  # "header.d" -> value, as written


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    results: tuple[MethodResult, ...]

    def of(self, method: str) -> list[MethodResult]:
        return [r for r in self.results if r.method == method]


class Unreadable(ValueError):
    """The trusted header does not parse as RFC 8601."""


def authserv_id_of(value: str) -> str:
    """The authserv-id a header value starts with (ASCII lower case), '' when none."""
    match = _ATEXT_RUN.match(value, _LEADING_COMMENT.match(value).end())  # type: ignore[union-attr]
    return ascii_lower(match.group()) if match else ""


def parse(value: str) -> AuthResults:
    """One unfolded Authentication-Results value, strictly. Raises :class:`Unreadable`."""
    if len(value) > MAX_HEADER_CHARS:
        raise Unreadable(f"{len(value)} characters long (more than {MAX_HEADER_CHARS})")
    if not value.isascii():
        # RFC 8601 values are ASCII (an EAI address would come quoted in a pvalue); the
        # package's patterns are not written for anything else.
        raise Unreadable("it contains non-ASCII characters")
    plain = _plain(value)
    if plain is not None:
        authserv_id, found = plain
    else:
        authserv_id, found = _strict(value)
    results = tuple(
        MethodResult(
            method=ascii_lower(str(r.method)), result=ascii_lower(str(r.result)),
            props={f"{ascii_lower(str(p.type))}.{ascii_lower(str(p.name))}": str(p.value)
                   for p in r.properties},
        )
        for r in found
    )
    return AuthResults(ascii_lower(authserv_id), results)


def _strict(value: str) -> tuple[str, list[authres.core.AuthenticationResult]]:
    """The package's strict parse of the value; raises :class:`Unreadable`."""
    try:
        header = _StrictHeader.parse_value(_CONTEXT, value)
    except Exception as exc:  # noqa: BLE001 - see below
        # Not only its own errors: the package has bugs on malformed input (an empty property
        # name, ``header.=``, raises AttributeError). Whatever it raises, the header did not
        # parse — unreadable, never a crash of unwrap.
        raise Unreadable(str(exc) or type(exc).__name__) from exc
    results = list(header.results)
    if any(isinstance(r, authres.core.NoneAuthenticationResult) for r in results):
        # RFC 8601 allows ``none`` only alone (the package returns no results for that); after
        # results the package keeps it as a result without a method.
        raise Unreadable("'none' among results (RFC 8601 allows it only alone)")
    return str(header.authserv_id), results


def trusted_header(msg: Message, authserv_id: str) -> str | None:
    """The topmost Authentication-Results value whose authserv-id is ours, unfolded; None when
    there is none. Only the authserv-id is looked at here: the one header found is the one
    judged, so a forgery below it can never be read instead of an unreadable real one."""
    wanted = ascii_lower(authserv_id.strip())
    if not wanted:
        return None
    for value in msg.get_all("authentication-results") or []:
        text = _FOLD.sub(" ", str(value)).strip()
        if authserv_id_of(text) == wanted:
            return text
    return None


def _domain(value: str) -> str:
    """The domain of a property value: ``user@d``, ``@d``, ``"quoted"@d`` or ``d``."""
    return ascii_lower(value.rpartition("@")[2].strip().strip(".").strip('"'))


def verdict(results: AuthResults, from_domain: str) -> str | None:
    """None when ``results`` show an aligned pass for ``from_domain``, else why not."""
    d = ascii_lower(from_domain)
    dmarc = results.of("dmarc")
    for r in dmarc:
        header_from = r.props.get("header.from")
        if header_from is not None and _domain(header_from) != d:
            return f"dmarc result describes header.from={header_from}, not the From domain {d}"
    verdicts = {r.result for r in dmarc} - _DMARC_NO_VERDICT
    if verdicts == {"pass"}:
        if all("header.from" in r.props for r in dmarc if r.result == "pass"):
            return None
        return "dmarc=pass does not say which domain passed (no header.from)"
    if verdicts:
        shown = ",".join(sorted(r.result for r in dmarc))
        return f"dmarc={shown}" + (" (conflicting results)" if "pass" in verdicts else "")
    aligned = {
        "dkim": [r.result for r in results.of("dkim") if _dkim_domain(r) == d],
        "spf": [r.result for r in results.of("spf")
                if _domain(r.props.get("smtp.mailfrom", "")) == d],
    }
    for method, found in aligned.items():
        if "pass" in found and set(found) - {"pass"} - _SILENT:
            return f"{method} results for {d} conflict ({','.join(found)})"
    if any("pass" in found for found in aligned.values()):
        return None
    shown = "; ".join(f"{r.method}={r.result}" for r in results.results) or "no results"
    return f"no passing dmarc, and no dkim or spf pass aligned with {d} ({shown})"


def _dkim_domain(r: MethodResult) -> str:
    if "header.d" in r.props:
        return _domain(r.props["header.d"])
    return _domain(r.props.get("header.i", ""))
