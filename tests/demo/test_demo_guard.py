"""The demo resets its schema and topics: only on the local stack unless told otherwise."""

from __future__ import annotations

import argparse

import pytest

from mailroom.console.demo import commands
from mailroom.errors import ConfigError
from mailroom.settings import Settings


def test_local_stack_is_recognised() -> None:
    assert commands._on_local_stack(Settings())
    test_schema = "host=127.0.0.1 port=15432 dbname=mailroom user=mailroom options='-c x=y'"
    assert commands._on_local_stack(Settings(database_url=test_schema))


@pytest.mark.parametrize("changes", [
    {"database_url": "host=db.corp.example port=5432 dbname=crm user=crm"},
    {"kafka_bootstrap": "kafka1.corp.example:9092"},
])
def test_external_services_are_not_reset_without_consent(changes: dict) -> None:
    settings = Settings(**changes)
    assert not commands._on_local_stack(settings)
    args = argparse.Namespace(allow_reset=False)
    with pytest.raises(ConfigError, match="--allow-reset"):
        commands.run(settings, args)
