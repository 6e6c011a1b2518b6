"""The forwarding rule for Exchange Online / Microsoft 365: what an admin runs, not run here.

Mailroom does not reach Microsoft's services, so for these users it writes what the admin
runs: an Exchange Online PowerShell script (``New-InboxRule -ForwardAsAttachmentTo``, one rule
per mailbox, removing an earlier Mailroom rule of the same name first so it can be run again),
or Microsoft Graph JSON batches of ``POST /users/{upn}/mailFolders/inbox/messageRules`` with a
``messageRule`` whose action is ``forwardAsAttachmentTo``. Both forward *as an attachment*:
the forward mailbox gets the original intact inside the forward, as the brief's forward
mailbox expects. A rule without conditions applies to every message.

Two things the admin must know, also printed at the top of the PowerShell script: Exchange
Online's outbound spam policy blocks automatic forwarding to external addresses by default
(a forward mailbox in the same tenant is not external), and an inbox rule runs only for mail
that reaches the inbox.
"""

from __future__ import annotations

import json
from typing import Any

from mailroom.console.ops.forward_rules import check_address

#: The rule's name in the user's mailbox (New-InboxRule -Name: at most 64 characters).
RULE_NAME = "Mailroom forward mailbox"
#: Microsoft Graph JSON batching takes at most 20 requests per batch.
GRAPH_BATCH_SIZE = 20


def _ps(value: str) -> str:
    """A PowerShell single-quoted string (a quote inside is doubled; nothing is expanded)."""
    return "'" + value.replace("'", "''") + "'"


def powershell(users: list[str], forward_mailbox: str) -> str:
    """An Exchange Online PowerShell script that gives each user the forwarding rule."""
    forward = check_address(forward_mailbox)
    lines = [
        "# Mailroom: forward every incoming message as an attachment to the forward mailbox",
        f"# {forward}. Run in Exchange Online PowerShell (Connect-ExchangeOnline) as an admin",
        "# with the Mail Recipients role. Running it again replaces the rules.",
        "# Automatic forwarding outside the tenant is blocked by the outbound spam policy",
        "# unless allowed there; a forward mailbox inside the tenant is not affected.",
        "$ErrorActionPreference = 'Stop'",
    ]
    for user in users:
        mailbox = _ps(check_address(user))
        lines += [
            f"Get-InboxRule -Mailbox {mailbox} | Where-Object {{ $_.Name -eq {_ps(RULE_NAME)} }}"
            " | Remove-InboxRule -Confirm:$false",
            f"New-InboxRule -Mailbox {mailbox} -Name {_ps(RULE_NAME)} "
            f"-ForwardAsAttachmentTo {_ps(forward)} -StopProcessingRules $false -Force",
        ]
    return "\n".join(lines) + "\n"


def graph_rule(forward_mailbox: str) -> dict[str, Any]:
    """The ``messageRule`` body (Microsoft Graph v1.0) of the forwarding rule."""
    return {
        "displayName": RULE_NAME,
        "sequence": 1,
        "isEnabled": True,
        "actions": {
            "forwardAsAttachmentTo": [
                {"emailAddress": {"address": check_address(forward_mailbox)}}],
            "stopProcessingRules": False,
        },
    }


def graph_batches(users: list[str], forward_mailbox: str) -> str:
    """JSON batches for Microsoft Graph (``POST /v1.0/$batch`` with each element of the list):
    one ``messageRule`` creation per user, at most :data:`GRAPH_BATCH_SIZE` per batch."""
    body = graph_rule(forward_mailbox)
    requests = [{"id": str(i), "method": "POST",
                 "url": f"/users/{check_address(u)}/mailFolders/inbox/messageRules",
                 "headers": {"Content-Type": "application/json"}, "body": body}
                for i, u in enumerate(users, 1)]
    batches = [{"requests": requests[i:i + GRAPH_BATCH_SIZE]}
               for i in range(0, len(requests), GRAPH_BATCH_SIZE)]
    return json.dumps(batches, indent=2) + "\n"
