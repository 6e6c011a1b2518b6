"""Who forwarded this, and may we believe it? The anti-spoofing gate of the forward mailbox.

Anyone on the internet can mail a forward mailbox, so an attached "original" proves nothing by
itself. A forward is accepted only when all of these hold (fail closed: what cannot be shown
to hold is a dead letter):

1. its From header is exactly one mailbox under the *strict* parser (``addresses.py``): crafted
   forms such as ``"alice@corp.example"@evil.example`` or ``alice@corp.example
   <eve@evil.example>`` either parse to the address really meant or are refused; a ``From :``
   line (space before the colon), which we would not read as From but another program might,
   is refused as ambiguous too;
2. that address (compared ASCII-case-insensitively) is a forwarder of *this* forward mailbox:
   a user or queue whose mailbox is set to "via this forward mailbox" (one of another forward
   mailbox is refused);
3. our receiving server vouches for it: the topmost Authentication-Results header with our
   authserv-id (``unwrap_authserv_id``) shows a pass aligned with the From domain
   (``authresults.py``). No such header, or no authserv-id configured: ``auth_missing``; a
   header that fails, conflicts or cannot be read: ``auth_failed``. The only way around this
   check is the forward mailbox's own opt-out (``mailroom mailbox auth-results ADDRESS off``,
   for a receiving server that cannot stamp results); the emails of such a forward say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from unwrap import authresults
from unwrap.addresses import AddressError, ascii_lower, parse_mailbox
from unwrap.context import Forwarder, Rejection, UnwrapContext, as_forwarder
from unwrap.parse import raw_header

#: The dead-letter reason of a forward whose forwarder's mailbox is not approved: held, not
#: refused — approving the mailbox sends exactly these back (the reason names ``<address>``).
HELD = "forwarder_not_approved"


def held_reason(address: str, state: str) -> str:
    """Why a forward for ``address`` (ASCII lower case) waits; names it as ``<address>``."""
    return (f"the mailbox of forwarder <{address}> is {state}: its forwards wait here until "
            f"`mailroom mailbox approve {address}` sends them back")


UNCHECKED_NOTE = ("Authentication-Results not checked: the forward mailbox is set not to "
                  "require them; the forwarder is believed on its From address alone")


@dataclass(frozen=True)
class Attribution:
    forwarder: Forwarder  # the user or queue whose rule forwarded it
    address: str
    forward_mailbox_id: str
    notes: tuple[str, ...] = ()  # what the email's warnings should say about the trust decision


def attribute(outer: Message, mailbox_id: str, context: UnwrapContext,
              spaced_from: bool = False) -> Attribution | Rejection:
    """The forwarding user of a forward, or why the forward is not believed.

    ``spaced_from``: the raw header block holds a ``From :`` line the parser did not read
    (:func:`unwrap.parse.spaced_from_in_header`, computed on the bytes by the caller)."""
    value = raw_header(outer, "from", context.limits.max_header_chars)
    if len(outer.get_all("from") or []) > 1 or spaced_from:
        return Rejection("forwarder_ambiguous",
                         "the forward carries several From headers (or a 'From :' line, which "
                         "some programs read as From); the forwarder is ambiguous")
    try:
        if len(value) > context.limits.max_header_chars:
            raise AddressError(f"{len(value)} characters long")  # not worth parsing
        sender = parse_mailbox(value)
    except AddressError as exc:
        return Rejection("forwarder_unparseable",
                         f"the forward's From {value[:200]!r} is not one plain address ({exc}); "
                         "it cannot be trusted as a forwarder")
    address = ascii_lower(sender.address)
    forwarder = forwarder_of(context, mailbox_id, address)
    if isinstance(forwarder, Rejection):
        return forwarder
    who = Attribution(forwarder=forwarder, address=address, forward_mailbox_id=mailbox_id)
    if mailbox_id in context.unchecked_forward_mailboxes:
        return Attribution(forwarder, address, mailbox_id, (UNCHECKED_NOTE,))
    refused = _auth_refusal(outer, address, mailbox_id, context.authserv_id)
    return who if refused is None else refused


def forwarder_of(context: UnwrapContext, mailbox_id: str, address: str) -> Forwarder | Rejection:
    """The user or queue forwarding from ``address`` (ASCII lower case) to this forward
    mailbox, or the ``not_a_forwarder`` refusal."""
    who = context.forwarders.get(mailbox_id, {}).get(address)
    state = context.unapproved_forwarders.get(mailbox_id, {}).get(address)
    if who is None and state is not None:
        # Held, not refused: approving the mailbox sends these back.
        return Rejection(HELD, held_reason(address, state))
    if who is None:
        return Rejection("not_a_forwarder",
                         f"{address} is not a forwarder of forward mailbox {mailbox_id}: no user "
                         "or queue whose mailbox is set to 'via this forward mailbox' has this "
                         "address")
    return as_forwarder(who)


def _auth_refusal(outer: Message, address: str, mailbox_id: str,
                  authserv_id: str) -> Rejection | None:
    """None when our receiving server's Authentication-Results pass for ``address``."""
    results = our_results(outer, authserv_id, f"forward from {address}",
                          f"{address} sent it")
    if isinstance(results, Rejection):
        return results
    why = authresults.verdict(results, address.rpartition("@")[2])
    if why is None:
        return None
    return Rejection("auth_failed", f"Authentication-Results of {results.authserv_id} does not "
                     f"pass for {address}: {why}")


def our_results(msg: Message, authserv_id: str, subject: str,
                vouched: str) -> authresults.AuthResults | Rejection:
    """Our receiving server's Authentication-Results on ``msg``, read — or the refusal: no
    authserv-id configured or no header of ours (``auth_missing``), an unreadable one
    (``auth_failed``). The verdict on what they show is the caller's. ``subject`` names what is
    checked ("forward from a@b.example"), ``vouched`` what the results would show ("a@b.example
    sent it")."""
    if not authserv_id.strip():
        return Rejection(
            "auth_missing",
            f"{subject} not checked: no authserv-id of our receiving server is configured "
            "(unwrap_authserv_id), so no Authentication-Results can be trusted; set it, or opt "
            "this forward mailbox out (`mailroom mailbox auth-results ADDRESS off`) if its "
            "server cannot stamp results, then retry the dead letter")
    value = authresults.trusted_header(msg, authserv_id)
    if value is None:
        return Rejection(
            "auth_missing",
            f"{subject} carries no Authentication-Results header of our receiving server "
            f"{authserv_id!r}: nothing vouches that {vouched}")
    try:
        return authresults.parse(value)
    except authresults.Unreadable as exc:
        return Rejection("auth_failed", f"the Authentication-Results header of {authserv_id} "
                         f"cannot be read ({exc}): {value[:300]!r}")
