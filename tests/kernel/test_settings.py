"""The one settings object: defaults < TOML file < MAILROOM_* environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailroom.errors import ConfigError
from mailroom.settings import Settings, describe, env_name, load


def test_defaults_point_at_the_local_stack() -> None:
    s = load(environ={})
    assert s.bootstrap_servers == ["127.0.0.1:19092"]
    assert "port=15432" in s.dsn and "dbname=mailroom" in s.dsn
    assert s.topic("raw") == "mailroom.raw"


def test_file_then_environment_take_precedence(tmp_path: Path) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text('kafka_bootstrap = "k1:9092, k2:9092"\ntopic_partitions = 12\n')
    s = load(environ={"MAILROOM_CONFIG": str(config), "MAILROOM_TOPIC_PARTITIONS": "24"})
    assert s.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert s.topic_partitions == 24  # the environment wins over the file


@pytest.mark.parametrize(("environ", "message"), [
    ({"MAILROOM_TOPIC_PARTITIONS": "six"}, "MAILROOM_TOPIC_PARTITIONS: expected int"),
    ({"MAILROOM_CONFIG": "/nonexistent/mailroom.toml"}, "does not exist"),
])
def test_bad_values_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(environ=environ)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("kafka_bootstrapp = 'typo:9092'\n")
    with pytest.raises(ConfigError, match="unknown setting 'kafka_bootstrapp'"):
        load(environ={}, config_file=str(config))


def test_every_setting_is_documented_with_its_environment_name() -> None:
    rows = describe()
    assert len(rows) == len(Settings.__dataclass_fields__)
    for name, env, _default, doc in rows:
        assert env == env_name(name) and env.startswith("MAILROOM_")
        assert doc, f"setting {name} has no documentation"
