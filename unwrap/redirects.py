"""Redirect-style forwards: the original arrives intact, and who forwarded it is a *claim*.

A redirect (Sieve ``redirect``, Gmail's automatic forwarding, an Exchange redirect rule) sends
the user's message on unchanged: its From is the original sender, not the forwarding user, so
the forwarder must be read from what the mail servers on the way stamped on it. Anyone can write
any header, so a claim is believed only under the same fail-closed rules as a forward as an
attachment (``attribution.py``):

1. **The claim** — the forwarding user's (or queue's) address, from the first of these that
   says anything:

   * :data:`~unwrap.forwarders.FORWARDED_BY_HEADER`, added by the forwarding rule our own
     server runs (``mailroom rules deploy``: the Sieve script deletes every copy the sender
     wrote, then adds its own). Every occurrence must name the same single address, else
     ``forwarder_ambiguous``; one that is not a plain address is ``forwarder_unparseable``;
   * else the topmost ``X-Original-To`` or ``Delivered-To`` (delivery stamps are prepended, so
     the topmost one that is not the forward mailbox's own address is the last delivery before
     the redirect: the forwarding user's mailbox; a stamp a sender forged sits further down and
     is never read). A stamp naming no forwarder of this mailbox is no claim: plenty of
     ordinary mail carries stamps of other mailboxes.

   The address must be a forwarder of *this* forward mailbox (``not_a_forwarder`` otherwise).

2. **Our receiving server vouches for the hop** — the topmost Authentication-Results with our
   authserv-id (the header the attachment check reads) shows a pass *aligned with the
   forwarder's domain* for the redirect itself: ``spf=pass`` whose ``smtp.mailfrom`` domain is
   the forwarder's (a redirect's envelope sender is the forwarding mailbox: Sieve with
   ``sieve_redirect_envelope_from = recipient``, Gmail's ``alice+caf_=…@gmail.com``), a
   ``dkim=pass`` with ``header.d`` the forwarder's domain (a redirecting server that signs), or
   ``arc=pass`` whose newest ARC-Seal was made by the forwarder's domain. DMARC is not
   consulted: it judges the original's From, which is the original sender's. No such header:
   ``auth_missing``; a non-pass, a conflict or an unreadable header: ``auth_failed``. The
   forward mailbox's opt-out (``mailroom mailbox auth-results ADDRESS off``) skips this step,
   as it does for attachments, and the email says so.

A redirect becomes one Email: the whole message, copy kind ``direct`` (the original's own
bytes, as rich as a direct copy), its path naming the claim's source.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from email.message import Message

from unwrap import authresults
from unwrap.addresses import AddressError, ascii_lower, parse_address_list, parse_mailbox
from unwrap.attribution import Attribution, forwarder_of, our_results
from unwrap.context import Rejection, UnwrapContext
from unwrap.forwarders import FORWARDED_BY_HEADER

UNCHECKED_REDIRECT_NOTE = (
    "Authentication-Results not checked: the forward mailbox is set not to require them; the "
    "redirect's forwarder is believed on its claim alone")
#: Delivery stamps that name the mailbox a message was delivered to, read after the header.
STAMPS = ("x-original-to", "delivered-to")
_FOLD = re.compile(r"\r?\n[ \t]*")
_TAG = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*([^;]*)")
_MAX_VALUE_CHARS = 1_000  # a plain address is at most a few hundred characters


@dataclass(frozen=True)
class Claim:
    address: str  # ASCII lower case
    source: str  # the header it came from, as a user reads it


def _values(msg: Message, name: str) -> list[str]:
    return [_FOLD.sub(" ", str(v)).strip() for v in msg.get_all(name) or []]


def claim(msg: Message, own_address: str,
          forwarders: Collection[str]) -> Claim | Rejection | None:
    """Who the message says redirected it, or why that cannot be read; None: no claim at all
    (not a redirect). A delivery stamp counts as a claim only when it names one of
    ``forwarders``: ordinary mail carries stamps of other mailboxes (a list's members, a
    previous hop), which say nothing about forwarding to us."""
    marks = _values(msg, FORWARDED_BY_HEADER)
    if marks:
        found: set[str] = set()
        for value in marks:
            try:
                if len(value) > _MAX_VALUE_CHARS:
                    raise AddressError(f"{len(value)} characters long")
                found.add(ascii_lower(parse_mailbox(value).address))
            except AddressError as exc:
                return Rejection("forwarder_unparseable",
                                 f"the {FORWARDED_BY_HEADER} header {value[:200]!r} is not one "
                                 f"plain address ({exc}); the forwarder cannot be trusted")
        if len(found) > 1:
            return Rejection("forwarder_ambiguous",
                             f"{FORWARDED_BY_HEADER} names several forwarders "
                             f"({', '.join(sorted(found))}); our rule adds exactly one")
        return Claim(found.pop(), FORWARDED_BY_HEADER)
    own = ascii_lower(own_address.strip())
    for name in STAMPS:
        for value in _values(msg, name)[:5]:  # the topmost stamps; forged ones sit lower
            addresses, _problems = parse_address_list(value[:_MAX_VALUE_CHARS])
            if len(addresses) != 1:
                continue
            address = ascii_lower(addresses[0].address)
            if "@" in address and address != own:
                return Claim(address, _TITLES[name]) if address in forwarders else None
    return None


_TITLES = {"x-original-to": "X-Original-To", "delivered-to": "Delivered-To"}


def attribute(msg: Message, mailbox_id: str, found: Claim,
              context: UnwrapContext) -> Attribution | Rejection:
    """The forwarder of a redirect under the fail-closed rules above."""
    forwarder = forwarder_of(context, mailbox_id, found.address)
    if isinstance(forwarder, Rejection):
        return Rejection(forwarder.reason_code,
                         f"{forwarder.reason} (claimed by the redirect's {found.source})")
    if mailbox_id in context.unchecked_forward_mailboxes:
        return Attribution(forwarder, found.address, mailbox_id, (UNCHECKED_REDIRECT_NOTE,))
    refused = _auth_refusal(msg, found, context.authserv_id)
    if refused is not None:
        return refused
    return Attribution(forwarder, found.address, mailbox_id)


def _auth_refusal(msg: Message, found: Claim, authserv_id: str) -> Rejection | None:
    who = f"redirect claimed by {found.address} ({found.source})"
    results = our_results(msg, authserv_id, who, "the forwarder's server sent it")
    if isinstance(results, Rejection):
        return results
    why = hop_verdict(results, msg, found.address.rpartition("@")[2])
    if why is None:
        return None
    return Rejection("auth_failed", f"Authentication-Results of {results.authserv_id} do not "
                     f"show the {who} came from the forwarder's domain: {why}")


def hop_verdict(results: authresults.AuthResults, msg: Message, domain: str) -> str | None:
    """None when the results show the redirect hop came from ``domain``, else why not."""
    d = ascii_lower(domain)
    aligned = {
        "spf": [r.result for r in results.of("spf")
                if _domain(r.props.get("smtp.mailfrom", "")) == d],
        "dkim": [r.result for r in results.of("dkim")
                 if _domain(r.props.get("header.d", r.props.get("header.i", ""))) == d],
    }
    sealer = newest_arc_sealer(msg)
    if sealer == d:
        aligned["arc"] = [r.result for r in results.of("arc")]
    for method, found in aligned.items():
        if "pass" in found and set(found) - {"pass", "none"}:
            return f"{method} results for {d} conflict ({','.join(found)})"
    if any("pass" in found for found in aligned.values()):
        return None
    shown = "; ".join(f"{r.method}={r.result}" for r in results.results) or "no results"
    seal = f"; newest ARC seal by {sealer}" if sealer else ""
    return f"no spf, dkim or arc pass aligned with {d} ({shown}{seal})"


def newest_arc_sealer(msg: Message) -> str:
    """The ``d=`` of the ARC-Seal with the highest instance (ASCII lower case), '' if none or
    if two seals claim that instance (a broken or forged chain)."""
    best, sealer, clash = 0, "", False
    for value in _values(msg, "arc-seal")[:50]:
        tags = {k.lower(): v.strip() for k, v in _TAG.findall(value[:4096])}
        try:
            instance = int(tags.get("i", ""))
        except ValueError:
            continue
        if instance > best:
            best, sealer, clash = instance, ascii_lower(tags.get("d", "")), False
        elif instance == best:
            clash = True
    return "" if clash else sealer


def _domain(value: str) -> str:
    return ascii_lower(value.rpartition("@")[2].strip().strip(".").strip('"'))
