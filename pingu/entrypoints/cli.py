"""The `pingu` (and `py-pingu`) command line: check a configuration, or run the daemon."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pingu import __version__
from pingu.entrypoints.check_config import check_config

COMMANDS = ("check-config", "run")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="pingu",
        description=(
            "Multi-uplink failover routing daemon: keeps in table main only the default "
            "routes of uplinks whose gateway really reaches the probe targets."
        ),
        epilog="py-pingu compatibility: `pingu --config FILE [-v]` is `pingu run --config FILE`.",
    )
    top.add_argument("--version", action="version", version=f"pingu {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check-config",
        help="validate a configuration file and show its effective settings and timings",
    )
    check.add_argument("file", metavar="FILE")
    run = commands.add_parser("run", help="run the daemon (as root)")
    _daemon_options(run)
    return top


def _daemon_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", required=True, metavar="FILE", help="config.json")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every echo and event")


def seed_parser() -> argparse.ArgumentParser:
    """The seed's own command line: `py-pingu --config FILE [-v]`."""
    seed = argparse.ArgumentParser(prog="pingu", description="run the daemon (as root)")
    seed.add_argument("--version", action="version", version=f"pingu {__version__}")
    _daemon_options(seed)
    return seed


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; returns the process exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if (
        args_list
        and args_list[0] not in COMMANDS
        and args_list[0].startswith("-")
        and (
            "--config" in args_list
            or "-c" in args_list
            or any(a.startswith("--config=") for a in args_list)
        )
    ):
        args = seed_parser().parse_args(args_list)
        args.command = "run"
    else:
        args = parser().parse_args(args_list)
    if args.command == "check-config":
        return check_config(args.file, sys.stdout, sys.stderr)
    if args.command == "run":
        from pingu.entrypoints.runtime import run_daemon  # noqa: PLC0415 (heavy imports)

        return run_daemon(args.config, verbose=args.verbose)
    parser().print_help(sys.stderr)
    return 2


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
