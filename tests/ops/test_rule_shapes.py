"""The forwarding rule's text: the Sieve script, and the Exchange Online commands checked
against the shapes Microsoft publishes (no network here: the published facts are written down
below, each with where it comes from)."""

from __future__ import annotations

import json
import re

import pytest

from mailroom.console.ops import exchange_rules, forward_rules, managesieve
from mailroom.console.ops.forward_rules import Rule
from unwrap.forwarders import FORWARDED_BY_HEADER

# New-InboxRule (Exchange Online PowerShell reference, "Identity" parameter set): the
# parameters the emitted commands use must be among these; -Name is at most 64 characters.
NEW_INBOXRULE_PARAMETERS = {
    "Name", "Mailbox", "ForwardAsAttachmentTo", "ForwardTo", "RedirectTo",
    "StopProcessingRules", "Force", "Confirm", "Priority", "WhatIf",
}
INBOXRULE_NAME_MAX = 64
# Microsoft Graph v1.0 "Create rule" (POST /users/{id | userPrincipalName}/mailFolders/inbox/
# messageRules): displayName, sequence and actions are required; messageRuleActions properties.
GRAPH_RULE_REQUIRED = {"displayName", "sequence", "actions"}
GRAPH_RULE_PROPERTIES = GRAPH_RULE_REQUIRED | {"conditions", "exceptions", "isEnabled"}
GRAPH_ACTIONS = {"assignCategories", "copyToFolder", "delete", "forwardAsAttachmentTo",
                 "forwardTo", "markAsRead", "markImportance", "moveToFolder",
                 "permanentDelete", "redirectTo", "stopProcessingRules"}
GRAPH_BATCH_MAX = 20  # JSON batching: at most 20 requests in one batch


def test_powershell_uses_published_parameters_only() -> None:
    users = ["alice@corp.example", "o'brien@corp.example"]
    script = exchange_rules.powershell(users, "crm-forward@corp.example")
    commands = [line for line in script.splitlines() if line.startswith("New-InboxRule")]
    assert len(commands) == 2
    for command in commands:
        used = set(re.findall(r" -(\w+)", command))
        assert used <= NEW_INBOXRULE_PARAMETERS, used - NEW_INBOXRULE_PARAMETERS
        assert "-ForwardAsAttachmentTo 'crm-forward@corp.example'" in command
        assert "-StopProcessingRules $false" in command
    assert len(exchange_rules.RULE_NAME) <= INBOXRULE_NAME_MAX
    # A quote in an address is doubled inside PowerShell's single quotes, never expanded.
    assert "-Mailbox 'o''brien@corp.example'" in commands[1]
    # Running the script again replaces the rule instead of adding a second one.
    assert script.index("Remove-InboxRule") < script.index("New-InboxRule")


def test_graph_batches_match_the_messagerule_shape() -> None:
    users = [f"u{i}@corp.example" for i in range(45)]
    batches = json.loads(exchange_rules.graph_batches(users, "crm-forward@corp.example"))
    assert [len(b["requests"]) for b in batches] == [20, 20, 5]
    assert all(len(b["requests"]) <= GRAPH_BATCH_MAX for b in batches)
    ids = [r["id"] for b in batches for r in b["requests"]]
    assert len(set(ids)) == len(ids)
    first = batches[0]["requests"][0]
    assert first["method"] == "POST"
    assert first["url"] == "/users/u0@corp.example/mailFolders/inbox/messageRules"
    body = first["body"]
    assert GRAPH_RULE_REQUIRED <= set(body) <= GRAPH_RULE_PROPERTIES
    assert isinstance(body["sequence"], int) and body["isEnabled"] is True
    assert set(body["actions"]) <= GRAPH_ACTIONS
    assert body["actions"]["forwardAsAttachmentTo"] == [
        {"emailAddress": {"address": "crm-forward@corp.example"}}]
    assert "conditions" not in body  # no condition: every incoming message


@pytest.mark.parametrize("bad", ['x"@corp.example', "a b@corp.example", "x@corp.example\n",
                                 "nobody", "<x@corp.example>"])
def test_addresses_that_could_break_out_of_a_string_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        forward_rules.render(Rule(bad, "fwd@corp.example"))
    with pytest.raises(ValueError):
        forward_rules.render(Rule("alice@corp.example", bad))
    with pytest.raises(ValueError):
        exchange_rules.powershell([bad], "fwd@corp.example")


def test_the_script_strips_the_senders_header_before_adding_ours_and_redirects_a_copy() -> None:
    script = forward_rules.render(Rule("alice@corp.example", "fwd@corp.example"))
    header = f'"{FORWARDED_BY_HEADER}"'
    delete = script.index(f"deleteheader {header};")
    add = script.index(f'addheader {header} "alice@corp.example";')
    redirect = script.index('redirect :copy "fwd@corp.example";')
    assert delete < add < redirect
    assert 'require ["copy", "editheader"];' in script
    assert "include" not in script


def test_a_deployed_script_says_what_it_is() -> None:
    rule = Rule("alice@corp.example", "fwd@corp.example", includes="my filters")
    script = forward_rules.render(rule)
    assert forward_rules.parse(script) == rule
    assert 'include :personal :optional "my filters";' in script
    assert forward_rules.parse('require "fileinto";\nfileinto "x";\n') is None
    with pytest.raises(ValueError):
        forward_rules.render(Rule("alice@corp.example", "fwd@corp.example",
                                  includes=forward_rules.SCRIPT_NAME))


def test_managesieve_strings_and_literals() -> None:
    assert managesieve.quote('a "b" \\c') == '"a \\"b\\" \\\\c"'
    with pytest.raises(ValueError):
        managesieve.quote("two\r\nlines")
    assert managesieve.literal("héllo") == b"{6+}\r\nh\xc3\xa9llo"
