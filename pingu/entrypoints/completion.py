"""`python -m pingu.entrypoints.completion`: print pingu's bash completion, generated from
its argument parser (`cli.parser`) by shtab, so that a new command or option completes
without anyone writing completion code. shtab is needed only to build it (the Debian
package does, `packaging/deb.py`); pingu itself never imports it."""

from __future__ import annotations

import argparse
import sys

from pingu.entrypoints.cli import parser

# The metavars of arguments that name a file: they complete file names.
FILE_METAVARS = ("FILE", "PATH")


def completing_parser() -> argparse.ArgumentParser:
    """`cli.parser()` with its file arguments marked for shtab's file completion."""
    import shtab  # noqa: PLC0415 (a build-time dependency only)

    top = parser()
    for command in (top, *_subcommands(top)):
        for action in command._actions:
            if action.metavar in FILE_METAVARS:
                action.complete = shtab.FILE  # type: ignore[attr-defined]
    return top


def _subcommands(top: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [
        sub
        for action in top._actions
        if isinstance(action, argparse._SubParsersAction)
        for sub in action.choices.values()
    ]


def bash_completion() -> str:
    """The bash completion script of `pingu` (what bash-completion loads for it)."""
    import shtab  # noqa: PLC0415

    return shtab.complete(completing_parser(), shell="bash")


if __name__ == "__main__":
    sys.stdout.write(bash_completion())
