"""`pingu --help` and every command's help are complete: each command says what it does,
and each argument what it means."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from pingu.entrypoints import cli
from pingu.entrypoints.manpages import documented_actions

COMMANDS = cli.COMMANDS


def subcommands() -> dict[str, argparse.ArgumentParser]:
    for action in cli.parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("pingu has no commands")


def test_the_parser_s_commands_are_the_cli_s() -> None:
    assert tuple(subcommands()) == COMMANDS


def test_top_level_help_names_every_command_with_what_it_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pingu")
    for action in cli.parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, choice.dest
                assert choice.dest in out
                assert " ".join(choice.help.split()[:4]) in " ".join(out.split())
    assert "--version" in out


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_s_help_describes_it_and_every_argument(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = subcommands()[name]
    assert command.description, name
    assert len(command.description.split()) >= 8, name
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith(f"usage: pingu {name}")
    assert " ".join(command.description.split()) in out
    for action in documented_actions(command):
        assert action.help, f"{name}: {action.dest} has no help"
        assert len(action.help.split()) >= 2, f"{name}: {action.dest}: {action.help!r}"
        assert " ".join(action.help.split()) in out
        for option in action.option_strings:
            assert option in out


def test_the_command_line_loads_without_asyncio_or_the_configuration_model() -> None:
    # What `pingu --version` and `--help` cost at start-up: the heavy modules load only for
    # the command that needs them.
    program = (
        "import sys, pingu.entrypoints.cli; "
        "print(sorted(m for m in ('asyncio', 'pingu.domain.config', 'pingu.adapters') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
