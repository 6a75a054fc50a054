"""`python -m pingu`: the same as the `pingu` command."""

from pingu.entrypoints.cli import run

run()
