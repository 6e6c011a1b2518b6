"""The ``mailroom`` command imports only the modules of the command it is given.

A ``mailroom run STAGE`` process lives as long as the stage: every other command's modules (the
mail clients and credential cipher of ingest's commands, the other stages, the console's
operations) would stay in its memory for nothing. The parser a command gets must still be the
same one, help and errors included.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from mailroom import cli

# What `mailroom run unwrap` does not run, and what the whole parser would bring along: ingest's
# IMAP client and its credentials' cipher (cryptography's OpenSSL binding), the other stages'
# command modules, the console.
NOT_FOR_RUN = ("imapclient", "cryptography", "ingest", "route", "mailroom.console")

PROBE = """
import json, sys
from mailroom import cli, settings

def parsed():  # main loads the settings once the command line is parsed: stop there
    raise KeyboardInterrupt

settings.load = parsed
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_run_imports_only_the_run_command() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, "run", "unwrap"], check=True,
                         capture_output=True, text=True).stdout
    found = json.loads(out)
    assert found["code"] == 130  # parsed, then stopped before anything ran
    modules = set(found["modules"])
    assert "mailroom.commands.run" in modules
    loaded = sorted(m for m in modules
                    if any(m == top or m.startswith(top + ".") for top in NOT_FOR_RUN))
    assert loaded == []


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def helps(parser: argparse.ArgumentParser, path: str = "") -> dict[str, str]:
    """The help of a parser and of every sub-parser below it, by command path."""
    out = {path: parser.format_help()}
    for name, child in subcommands(parser).items():
        out.update(helps(child, f"{path} {name}".strip()))
    return out


def test_the_table_declares_every_command() -> None:
    declared = {name for _module, names in cli.COMMAND_MODULES for name in names}
    assert declared == set(subcommands(cli.build_parser()))


@pytest.mark.parametrize("command", sorted(
    {name for _module, names in cli.COMMAND_MODULES for name in names}))
def test_one_command_gets_the_same_parser(command: str) -> None:
    whole = helps(subcommands(cli.build_parser())[command], command)
    alone = helps(subcommands(cli.build_parser(command))[command], command)
    assert alone == whole


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], []):
        with pytest.raises(SystemExit):
            cli.main(argv)
    out, err = capsys.readouterr()
    assert out == cli.build_parser().format_help()
    assert "required: COMMAND" in err


def test_an_unknown_command_is_refused_with_every_choice(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["no-such-command"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'no-such-command'" in err and "'run'" in err and "'web'" in err
