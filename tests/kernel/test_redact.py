"""Secrets never shown: ``mailroom config``, log lines, CLI errors, doctor; DSNs without their
password."""

from __future__ import annotations

import argparse
import logging

import pytest

from mailroom import cli, log
from mailroom.errors import ConfigError
from mailroom.redact import Redactor, dsn_without_password
from mailroom.settings import Settings

PASSWORD = "hunter2-db"


@pytest.mark.parametrize("dsn, kept", [
    (f"host=db.example port=5432 dbname=mailroom user=mr password={PASSWORD}",
     "host=db.example"),
    (f"host=db.example password='{PASSWORD} x' user=mr", "user=mr"),
    (f"postgresql://mr:{PASSWORD}@db.example:5432/mailroom?sslmode=verify-full",
     "sslmode=verify-full"),
    (f"postgresql://mr@db.example/mailroom?password={PASSWORD}", "db.example"),
])
def test_dsn_without_password(dsn: str, kept: str) -> None:
    shown = dsn_without_password(dsn)
    assert PASSWORD not in shown and kept in shown


def test_dsn_without_a_password_is_shown_as_written() -> None:
    dsn = "postgresql://mr@db.example/mailroom"
    assert dsn_without_password(dsn) == dsn


def test_unparseable_dsn_is_still_masked() -> None:
    shown = dsn_without_password(f"host=x password={PASSWORD} port=notaport 'unbalanced")
    assert PASSWORD not in shown


def _settings() -> Settings:
    return Settings(
        database_url=f"postgresql://mr:{PASSWORD}@db.example/mailroom",
        web_secret="web-secret-value", secret_key="key-material-value",
        kafka_sasl_password="sasl-password-value",
    )


def test_every_secret_setting_is_known() -> None:
    assert {"web_secret", "secret_key", "kafka_sasl_password"} <= set(Settings.secret_fields())


def test_mailroom_config_masks_every_secret(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    s = _settings()
    for name in ("database_url", "web_secret", "secret_key", "kafka_sasl_password"):
        monkeypatch.setenv(f"MAILROOM_{name.upper()}", str(getattr(s, name)))
    monkeypatch.setenv("MAILROOM_CONFIG", "")
    monkeypatch.chdir("/")  # no mailroom.toml of the checkout
    assert cli.main(["config"]) == 0
    out = capsys.readouterr().out
    for secret in (PASSWORD, "web-secret-value", "key-material-value", "sasl-password-value"):
        assert secret not in out
    assert "web_secret = (set, not shown)" in out
    assert "db.example" in out  # where it connects is still shown


def test_redactor_masks_values_and_password_patterns() -> None:
    redact = Redactor.from_settings(_settings())
    text = (f"cannot connect with {PASSWORD}; key key-material-value; "
            "other host=h password=literal; amqp://u:p4ss@h/")
    shown = redact(text)
    for secret in (PASSWORD, "key-material-value", "literal", "p4ss"):
        assert secret not in shown
    assert "cannot connect with ***" in shown


def test_log_lines_and_tracebacks_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        log.configure("INFO", redact=Redactor.from_settings(_settings()))
        try:
            raise ConfigError(f"bad dsn postgresql://mr:{PASSWORD}@db.example/x")
        except ConfigError:
            logging.getLogger("t").exception("failed with web-secret-value")
        err = capsys.readouterr().err
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert "failed with ***" in err and "ConfigError" in err
    assert PASSWORD not in err and "web-secret-value" not in err


def test_cli_errors_are_masked(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MAILROOM_WEB_SECRET", "web-secret-value")
    monkeypatch.setenv("MAILROOM_CONFIG", "")
    monkeypatch.chdir("/")

    def fail(settings: Settings, args: object) -> int:
        raise ConfigError("the secret web-secret-value is wrong")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda command=None: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv: argparse.Namespace(func=fail))
    assert cli.main(["config"]) == 2
    assert "web-secret-value" not in capsys.readouterr().err
