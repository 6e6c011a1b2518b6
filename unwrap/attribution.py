"""Who forwarded this, and may we believe it? The anti-spoofing gate of the forward mailbox.

Anyone on the internet can mail a forward mailbox, so an attached "original" proves nothing by
itself. A forward is accepted only when all of these hold:

1. its From header is exactly one mailbox under the *strict* parser (``addresses.py``): crafted
   forms such as ``"alice@corp.example"@evil.example`` or ``alice@corp.example
   <eve@evil.example>`` either parse to the address really meant or are refused;
2. that address is a forwarder of *this* forward mailbox: a user whose mailbox is set to "via
   this forward mailbox" (a user of another forward mailbox is refused);
3. Authentication-Results: only headers whose authserv-id is our configured receiving server
   count (any other is ignored as possibly forged: anyone can write one). With
   ``require_auth_pass`` (default), the topmost trusted header must show a pass — ``dmarc=pass``,
   or, where DMARC gave no verdict, ``dkim``, ``spf`` or ``compauth`` ``=pass`` — and, when it
   names ``header.from``, that must be the From domain. No trusted header: nothing to check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from unwrap.addresses import AddressError, parse_mailbox
from unwrap.context import Rejection, UnwrapContext
from unwrap.parse import raw_header

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([A-Za-z0-9_-]+)(?:/[0-9]+)?\s*=\s*([A-Za-z]+)")
_PROP = re.compile(r"\b([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*=\s*([^\s;]+)")
_DMARC_NO_VERDICT = {"none", "temperror", "permerror", "bestguesspass"}


@dataclass(frozen=True)
class Attribution:
    user_id: str
    address: str
    forward_mailbox_id: str


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    results: dict[str, list[str]]  # method -> results, e.g. {"dkim": ["pass", "fail"]}
    props: dict[str, str]  # e.g. {"header.from": "corp.example"}


def parse_auth_results(value: str) -> AuthResults | None:
    """One Authentication-Results header (RFC 8601), leniently; None when unreadable."""
    text = value
    for _ in range(5):  # nested comments: strip innermost first
        text = _COMMENT.sub(" ", text)
    pieces = [p.strip() for p in text.split(";")]
    if not pieces or not pieces[0]:
        return None
    authserv_id = pieces[0].split()[0].lower()
    results: dict[str, list[str]] = {}
    props: dict[str, str] = {}
    for piece in pieces[1:]:
        match = _RESULT.match(piece)
        if match:
            results.setdefault(match.group(1).lower(), []).append(match.group(2).lower())
        for name, prop in _PROP.findall(piece):
            props.setdefault(name.lower(), prop.strip('"').lower())
    return AuthResults(authserv_id, results, props)


def trusted_auth_results(msg: Message, authserv_id: str) -> AuthResults | None:
    """The topmost Authentication-Results header added by our own receiving server."""
    if not authserv_id:
        return None
    for value in msg.get_all("authentication-results") or []:
        parsed = parse_auth_results(" ".join(str(value).split()))
        if parsed is not None and parsed.authserv_id == authserv_id.lower():
            return parsed
    return None


def auth_verdict(results: AuthResults, from_domain: str) -> str | None:
    """None when the trusted header shows a pass for this From domain, else why not."""
    header_from = results.props.get("header.from")
    if header_from and header_from != from_domain:
        return f"it describes header.from={header_from}, not the From domain {from_domain}"
    dmarc = results.results.get("dmarc", [])
    if "pass" in dmarc:
        return None
    if dmarc and not set(dmarc) <= _DMARC_NO_VERDICT:
        return f"dmarc={','.join(dmarc)}"
    for method in ("dkim", "spf", "compauth"):
        if "pass" in results.results.get(method, []):
            return None
    shown = "; ".join(f"{m}={','.join(r)}" for m, r in results.results.items()) or "no results"
    return f"no passing dmarc, dkim, spf or compauth ({shown})"


def attribute(outer: Message, mailbox_id: str, context: UnwrapContext) -> Attribution | Rejection:
    """The forwarding user of a forward, or why the forward is not believed."""
    value = raw_header(outer, "from")
    if len(outer.get_all("from") or []) > 1:
        return Rejection("forwarder_ambiguous",
                         "the forward carries several From headers; the forwarder is ambiguous")
    try:
        sender = parse_mailbox(value)
    except AddressError as exc:
        return Rejection("forwarder_unparseable",
                         f"the forward's From {value[:200]!r} is not one plain address ({exc}); "
                         "it cannot be trusted as a forwarder")
    address = sender.address.lower()
    table = context.forwarders.get(mailbox_id, {})
    user_id = table.get(address)
    if user_id is None:
        return Rejection("not_a_forwarder",
                         f"{address} is not a forwarder of forward mailbox {mailbox_id}: no user "
                         "whose mailbox is set to 'via this forward mailbox' has this address")
    results = trusted_auth_results(outer, context.authserv_id)
    if results is not None and context.require_auth_pass:
        why = auth_verdict(results, address.rpartition("@")[2])
        if why is not None:
            return Rejection("auth_failed",
                             f"Authentication-Results of {results.authserv_id} does not pass for "
                             f"{address}: {why}")
    return Attribution(user_id=user_id, address=address, forward_mailbox_id=mailbox_id)
