"""`mailroom privacy exclude|list|remove|sensitivity` against a real migrated schema, and the
route snapshot reading what they wrote."""

from __future__ import annotations

import json

import psycopg
import pytest

from mailroom import cli
from mailroom.errors import ConfigError
from mailroom.settings import Settings
from route import loader, privacy

pytestmark = pytest.mark.integration


def run(settings: Settings, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr("mailroom.settings.load", lambda: settings)
    return cli.main(list(argv))


def test_exclude_list_remove_and_sensitivity(route_db_settings: Settings,
                                             route_db: psycopg.Connection,
                                             monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    s = route_db_settings
    route_db.execute("INSERT INTO users (id, full_name) VALUES ('alice', 'Alice A')")
    route_db.commit()
    assert run(s, monkeypatch, "privacy", "exclude", "--user", "alice", "--address",
               " Dr@Clinic.Example ", "--domain", "@family.example") == 0
    assert run(s, monkeypatch, "privacy", "exclude", "--organisation", "--domain",
               "union.example", "--note", "works council") == 0
    # An owner that does not exist, a value that is not an address: refused, nothing written.
    assert run(s, monkeypatch, "privacy", "exclude", "--user", "nobody", "--domain",
               "x.example") == 2
    assert run(s, monkeypatch, "privacy", "exclude", "--queue", "q", "--address", "no-at") == 2
    capsys.readouterr()

    assert run(s, monkeypatch, "privacy", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["honour_sensitivity"] is True
    assert {(e["scope"], e["kind"], e["value"]) for e in listed["exclusions"]} == {
        ("user:alice", "address", "dr@clinic.example"),
        ("user:alice", "domain", "family.example"),
        ("organisation", "domain", "union.example"),
    }
    assert run(s, monkeypatch, "privacy", "sensitivity", "off") == 0
    assert "is tracked" in capsys.readouterr().out

    snapshot = loader.load(route_db, {}).privacy
    route_db.commit()
    assert snapshot.honour_sensitivity is False
    assert [e.value for e in snapshot.exclusions["user:alice"]] == ["dr@clinic.example",
                                                                    "family.example"]

    family = next(e["id"] for e in listed["exclusions"] if e["value"] == "family.example")
    assert run(s, monkeypatch, "privacy", "remove", str(family)) == 0
    assert run(s, monkeypatch, "privacy", "remove", str(family)) == 2  # gone already
    assert [e.value for e in privacy.entries(route_db, "user:alice")] == ["dr@clinic.example"]


def test_values_are_checked() -> None:
    with pytest.raises(ConfigError):
        privacy.normalise_value("domain", "localhost")
    with pytest.raises(ConfigError):
        privacy.check_scope("account:a1")
    assert privacy.normalise_value("domain", "@Clinic.Example.") == "clinic.example"
