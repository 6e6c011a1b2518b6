"""What the settings refuse: unknown MAILROOM_* variables and file keys, booleans that are no
boolean, choice values outside their table. A typo must fail loudly, never leave a default."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from mailroom import cli
from mailroom.errors import ConfigError
from mailroom.settings import CHOICES, NOT_SETTINGS, Settings, env_name, is_setting_variable, load

REPO = Path(__file__).resolve().parents[2]

#: What Kubernetes puts in every pod of a namespace holding the Service ``mailroom-web`` (port
#: "http" 80): its service links.
SERVICE_LINKS = {
    "MAILROOM_WEB_SERVICE_HOST": "10.96.0.12",
    "MAILROOM_WEB_SERVICE_PORT": "80",
    "MAILROOM_WEB_SERVICE_PORT_HTTP": "80",
    "MAILROOM_WEB_PORT": "tcp://10.96.0.12:80",
    "MAILROOM_WEB_PORT_80_TCP": "tcp://10.96.0.12:80",
    "MAILROOM_WEB_PORT_80_TCP_PROTO": "tcp",
    "MAILROOM_WEB_PORT_80_TCP_PORT": "80",
    "MAILROOM_WEB_PORT_80_TCP_ADDR": "10.96.0.12",
}


# --- unknown names -------------------------------------------------------------------------

def test_a_misspelt_variable_is_refused_with_the_setting_meant() -> None:
    with pytest.raises(ConfigError) as caught:
        load(environ={"MAILROOM_STAGE_WORKER": "4"})
    assert "unknown environment variable MAILROOM_STAGE_WORKER" in str(caught.value)
    assert "did you mean MAILROOM_STAGE_WORKERS?" in str(caught.value)


def test_every_unknown_variable_is_named_at_once_and_no_value_is_shown() -> None:
    environ = {"MAILROOM_KAFKA_SASL_PASSWRD": "hunter2-secret", "MAILROOM_ZZZ": "1",
               "MAILROOM_TOPIC_PARTITIONS": "12"}
    with pytest.raises(ConfigError) as caught:
        load(environ=environ)
    message = str(caught.value)
    assert "MAILROOM_KAFKA_SASL_PASSWRD (did you mean MAILROOM_KAFKA_SASL_PASSWORD?)" in message
    assert "MAILROOM_ZZZ" in message and "MAILROOM_ZZZ (" not in message  # nothing near it
    assert "MAILROOM_TOPIC_PARTITIONS" not in message
    assert "hunter2" not in message  # a misspelt password variable holds a password


def test_a_misspelt_file_key_is_refused_with_the_setting_meant(tmp_path: Path) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text("stage_worker = 4\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'stage_worker' \(did you mean "
                                          r"'stage_workers'\?\)"):
        load(environ={"MAILROOM_CONFIG": str(config)})


def test_the_variables_that_are_no_settings_are_accepted() -> None:
    environ = {name: "x" for name in NOT_SETTINGS if name != "MAILROOM_CONFIG"}
    environ["MAILROOM_CONFIG"] = ""  # empty: no file
    # a password an operator hands to `mailroom mailbox add --password-env`
    environ["MAILROOM_SALES_MAILBOX_PASSWORD"] = "x"
    environ.update(SERVICE_LINKS)
    assert load(environ=environ) == Settings()


def test_a_port_variable_holding_a_number_is_no_service_link() -> None:
    # Kubernetes' <SERVICE>_PORT holds a URL; a number there is a misspelt port setting.
    assert is_setting_variable("MAILROOM_METRIC_PORT", "tcp://10.96.0.9:9100")
    with pytest.raises(ConfigError, match=r"MAILROOM_METRIC_PORT \(did you mean "
                                          r"MAILROOM_METRICS_PORT\?\)"):
        load(environ={"MAILROOM_METRIC_PORT": "9100"})


def test_every_mailroom_variable_the_code_base_names_is_known() -> None:
    """Code, tests, bench, deploy files, Makefile and CI name only settings and the variables
    settings.py lists as no settings: anything else would be refused where it is set."""
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    wanted = re.compile(r"(\.(py|sh|yaml|yml|env|service|toml|cfg)|Makefile|^\.ci/.*)$")
    here = Path(__file__).resolve()
    unknown: set[str] = set()
    for name in tracked:
        path = REPO / name
        if not wanted.search(name) or name.startswith("docs/") or path == here or \
                not path.is_file():
            continue
        for var in re.findall(r"MAILROOM_[A-Z0-9_]+", path.read_text(errors="replace")):
            # a prefix followed by '*' or '{' names a family of settings, not one variable
            if not var.endswith("_") and not is_setting_variable(var):
                unknown.add(f"{name}: {var}")
    assert not unknown, sorted(unknown)


# --- booleans ------------------------------------------------------------------------------

@pytest.mark.parametrize(("word", "value"), [
    ("true", True), ("1", True), ("yes", True), ("on", True), ("TRUE", True), (" On ", True),
    ("false", False), ("0", False), ("no", False), ("off", False), ("False", False),
])
def test_boolean_words(word: str, value: bool) -> None:
    assert load(environ={"MAILROOM_UNWRAP_INLINE_FORWARDS": word}).unwrap_inline_forwards is value


@pytest.mark.parametrize("word", ["maybe", "", "2", "enabled", "t", "nein"])
def test_any_other_boolean_is_refused(word: str) -> None:
    # Before, any unknown word read as false: "enabled" switched the setting off.
    with pytest.raises(ConfigError, match=rf"MAILROOM_UNWRAP_INLINE_FORWARDS: expected a boolean "
                                          rf".*got {re.escape(repr(word))}"):
        load(environ={"MAILROOM_UNWRAP_INLINE_FORWARDS": word})


def test_a_boolean_in_the_file_is_checked_too(tmp_path: Path) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text('unwrap_inline_forwards = "sometimes"\n')
    with pytest.raises(ConfigError, match="unwrap_inline_forwards: expected a boolean"):
        load(environ={}, config_file=str(config))
    config.write_text("unwrap_inline_forwards = false\n")
    assert load(environ={}, config_file=str(config)).unwrap_inline_forwards is False


# --- choices -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CHOICES))
def test_each_choice_setting_refuses_a_value_outside_its_table(name: str) -> None:
    message = rf"{name} \({env_name(name)}\) must be one of .*got 'bogus'"
    with pytest.raises(ConfigError, match=message):
        load(environ={env_name(name): "bogus"})
    with pytest.raises(ConfigError, match=message):  # not only at load: every Settings made
        Settings().replace(**{name: "bogus"})


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_each_choice_is_accepted_in_any_case_and_kept_as_spelt_in_the_table(name: str) -> None:
    for allowed in CHOICES[name]:
        for given in (allowed, allowed.lower(), allowed.upper()):
            assert getattr(load(environ={env_name(name): given}), name) == allowed


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_each_choice_setting_documents_its_values(name: str) -> None:
    field = Settings.__dataclass_fields__[name]
    assert field.default in CHOICES[name]
    for allowed in filter(None, CHOICES[name]):
        assert allowed in field.metadata["doc"], f"{name}: {allowed} not documented"


# --- a good environment ----------------------------------------------------------------------

def test_a_good_environment_loads(tmp_path: Path) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text('log_level = "warning"\nstage_workers = 2\n')
    environ = {
        "PATH": "/usr/bin", "HOME": "/home/mailroom", "PGPASSWORD": "x",  # not ours: ignored
        "MAILROOM_CONFIG": str(config),
        "MAILROOM_KAFKA_BOOTSTRAP": "k1:9093,k2:9093",
        "MAILROOM_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "MAILROOM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "MAILROOM_KAFKA_SASL_USERNAME": "mailroom",
        "MAILROOM_KAFKA_SASL_PASSWORD": "x",
        "MAILROOM_STAGE_ISOLATION": "Process",
        "MAILROOM_UNWRAP_NON_FORWARDED": "accept",
        "MAILROOM_UNWRAP_INLINE_FORWARDS": "off",
        "MAILROOM_METRICS_PORT": "9101",
        "MAILROOM_CORPUS": "/srv/corpus",
        **SERVICE_LINKS,
    }
    s = load(environ=environ)
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (s.log_level, s.stage_workers, s.stage_isolation) == ("WARNING", 2, "process")
    assert (s.unwrap_non_forwarded, s.unwrap_inline_forwards) == ("accept", False)
    assert s.metrics_port == 9101


# --- what the commands show ------------------------------------------------------------------

@pytest.mark.parametrize("command", ["config", "doctor"])
def test_config_and_doctor_name_the_mistake_without_a_traceback(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAILROOM_STAGE_WORKER", "4")
    assert cli.main([command]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mailroom: unknown environment variable MAILROOM_STAGE_WORKER")
    assert "MAILROOM_STAGE_WORKERS" in err and "Traceback" not in err
    monkeypatch.delenv("MAILROOM_STAGE_WORKER")
    monkeypatch.setenv("MAILROOM_UNWRAP_INLINE_FORWARDS", "maybe")
    assert cli.main([command]) == 2
    err = capsys.readouterr().err
    assert "MAILROOM_UNWRAP_INLINE_FORWARDS: expected a boolean" in err and "Traceback" not in err
