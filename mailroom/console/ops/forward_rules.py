"""The forwarding rule itself: the Sieve script for a mail user, and reading one back.

The script sends every incoming message on to the forward mailbox and keeps a copy. Pigeonhole
has no ``enclose`` (forward-as-attachment) extension, so it *redirects*: the original goes on
intact, and the forward mailbox learns who forwarded it from a header **our own server** adds —
:data:`~unwrap.forwarders.FORWARDED_BY_HEADER`, whose value is the user's mailbox address. A
sender could write that header too, so the script first deletes every copy of it that came with
the message: what arrives carries only the one this server added.

A user may already have an active script of their own (vacation replies, filing into folders).
It keeps running: the rule includes it after forwarding (``include :personal``), and removing
the rule makes it active again. The script names what it includes on a comment line, so
``rules remove`` and a later deploy know it without any state kept elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from unwrap.forwarders import FORWARDED_BY_HEADER

#: The script's name on the user's server.
SCRIPT_NAME = "mailroom-forward"
_FIRST_LINE = "# Mailroom forwarding rule"
_ADDRESS = re.compile(r"[^\s\"\\@<>()\[\],;:]+@[A-Za-z0-9.-]+")
_FORWARD_LINE = re.compile(r"^# forward mailbox: (\S+)$", re.M)
_USER_LINE = re.compile(r"^# forwarding user: (\S+)$", re.M)
_INCLUDES_LINE = re.compile(r'^# keeps the user\'s own script: "(.*)"$', re.M)


@dataclass(frozen=True)
class Rule:
    """What a deployed script says: forwarding whose mail, where, and which script it keeps."""

    user: str
    forward_mailbox: str
    includes: str = ""


def check_address(address: str) -> str:
    """A plain addr-spec (it goes into a Sieve string and a header); anything else raises."""
    if not _ADDRESS.fullmatch(address):
        raise ValueError(f"not a plain email address: {address!r}")
    return address


def _sieve_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(rule: Rule) -> str:
    """The Sieve script (RFC 5228, with copy RFC 3894, editheader RFC 5293, include RFC 6609)."""
    user, forward = check_address(rule.user), check_address(rule.forward_mailbox)
    if rule.includes == SCRIPT_NAME or any(c in rule.includes for c in '"\r\n\\'):
        raise ValueError(f"cannot keep a script named {rule.includes!r}")
    extensions = ['"copy"', '"editheader"'] + (['"include"'] if rule.includes else [])
    header = _sieve_string(FORWARDED_BY_HEADER)
    lines = [
        _FIRST_LINE,
        f"# forward mailbox: {forward}",
        f"# forwarding user: {user}",
    ]
    if rule.includes:
        lines.append(f'# keeps the user\'s own script: "{rule.includes}"')
    lines += [
        "# Written by `mailroom rules deploy`; replaced by the next deploy, removed by",
        "# `mailroom rules remove`.",
        f"require [{', '.join(extensions)}];",
        "# Only this server's mark may reach the forward mailbox: drop any the sender wrote.",
        f"deleteheader {header};",
        f"addheader {header} {_sieve_string(user)};",
        "# :copy keeps the message here too.",
        f"redirect :copy {_sieve_string(forward)};",
    ]
    if rule.includes:
        # :optional — a script the user has deleted since is skipped, not an error.
        lines.append(f"include :personal :optional {_sieve_string(rule.includes)};")
    return "\n".join(lines) + "\n"


def parse(script: str) -> Rule | None:
    """The rule a script written by :func:`render` describes; None for any other script."""
    if not script.startswith(_FIRST_LINE):
        return None
    forward, user = _FORWARD_LINE.search(script), _USER_LINE.search(script)
    if forward is None or user is None:
        return None
    includes = _INCLUDES_LINE.search(script)
    return Rule(user.group(1), forward.group(1), includes.group(1) if includes else "")
