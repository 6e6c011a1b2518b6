"""Rules files: validation errors name the key; a loaded file round-trips through PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from routebuild import RULES

from mailroom.errors import ConfigError
from route import loader, store
from route.commands import describe, read_rules
from route.config import TrackFilter, from_document

RULES_TOML = """
[track]
default = "replies"
owners = { "queue:support" = "all", "user:alice" = "known" }
create_contacts = { "queue:support" = true }

[correlation]
smart = false
[correlation.scopes."queue:support"]
smart = true

[token]
prefix = "ACME"
former_prefixes = ["CRM"]

[[queues.support.rules]]
name = "urgent"
subject = '\\burgent\\b'

[[queues.support.rules]]
name = "everyone else"
create_case = false

[cases]
reopen_window_days = 14
rate_limit_cases = 5
"""


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"trak": {}}, "trak: unknown key"),
        ({"track": {"default": "sometimes"}}, "track: filter must be one of"),
        ({"track": {"owners": {"contact:c1": "all"}}}, "track.owners.contact:c1"),
        ({"correlation": {"smart": "yes"}}, "correlation.smart: expected bool"),
        ({"correlation": {"scopes": {"team:x": {}}}}, "correlation.scopes.team:x"),
        ({"token": {"prefix": "C R M"}}, "token.prefix"),
        ({"token": {"digits": 2}}, "token.digits"),
        ({"queues": {"support": {"rules": [{"subject": "("}]}}},
         "queues.support.rules[0].subject: not a valid regular expression"),
        ({"queues": {"support": {"rules": [{"sender": "friends"}]}}},
         "queues.support.rules[0].sender"),
        ({"queues": {"support": {"rules": [{"create_case": False,
                                            "create_queue_item": False}]}}},
         "queues.support.rules[0]: does nothing"),
        ({"cases": {"reopen_window_days": -1}}, "cases.reopen_window_days: must not be negative"),
        ({"parties": {"max_matches": 0}}, "parties.max_matches"),
    ],
)
def test_errors_name_the_key(doc, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(")):
        from_document(doc)


def test_rules_file_reads(tmp_path: Path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES_TOML)
    config = read_rules(path)
    assert config.filter_for(config_owner("user:alice")) is TrackFilter.KNOWN
    assert config.switches_for("10", config_owner("queue:support")).smart
    assert config.token.find("Re: CRM:0000042") == ["42"]
    assert [i.name for i in config.queue_rules["support"]] == ["urgent", "everyone else"]


def config_owner(text: str):
    from route.reference import RecordRef

    return RecordRef.parse(text)


def test_check_flag_on_the_command_line(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[cases]\nrate_limit_cases = 'many'\n")
    run = subprocess.run([sys.executable, "-m", "mailroom.cli", "rules", "load", "--check",
                          str(bad)], capture_output=True, text=True)
    assert run.returncode == 2
    assert "bad.toml: cases.rate_limit_cases: expected int" in run.stderr


@pytest.mark.integration
def test_save_and_load_round_trip(route_db, tmp_path: Path):
    route_db.execute("INSERT INTO queues (id, name) VALUES ('support', 'Support')")
    path = tmp_path / "rules.toml"
    path.write_text(RULES_TOML)
    config = read_rules(path)
    store.save(route_db, config, str(path))
    assert describe(store.load(route_db)) == describe(config)
    # a second load replaces, never appends
    store.save(route_db, from_document(RULES), "again")
    assert describe(store.load(route_db)) == describe(from_document(RULES))


@pytest.mark.integration
def test_unknown_queue_is_refused_by_name(route_db):
    with pytest.raises(ConfigError, match="queues.nope: no such queue"):
        store.save(route_db, from_document({"queues": {"nope": {"rules": [{"name": "x"}]}}}))


@pytest.mark.integration
def test_tokens_are_numbered_and_formatted(route_db):
    first = store.issue_token(route_db, "case", "42")
    second = store.issue_token(route_db, "case", "42")
    assert second == first + 1
    fmt = store.load(route_db).token
    assert fmt.find(f"Re: problem {fmt.format(first)}") == [str(first)]


@pytest.mark.integration
def test_reference_data_loads(route_db):
    route_db.execute("""
        INSERT INTO users (id, full_name) VALUES ('alice', 'Alice');
        INSERT INTO accounts (id, name, owner_id) VALUES ('a1', 'Customer Ltd', 'alice');
        INSERT INTO contacts (id, first_name, account_id, owner_id)
            VALUES ('c1', 'Ann', 'a1', 'alice');
        INSERT INTO email_addresses VALUES ('contact', 'c1', 'ann@customer.example', true),
                                           ('user', 'alice', 'alice@acme.example', true);
    """)
    ref = loader.load(route_db, {})
    (ann,) = ref.matches("Ann@Customer.example")
    assert (str(ann.record), ann.owner, str(ann.customer)) == ("contact:c1", "alice", "account:a1")
    assert str(ref.matches("alice@acme.example")[0].record) == "user:alice"
