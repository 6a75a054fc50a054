"""The `pingu` (and `py-pingu`) command line: check a configuration, run the daemon, or
show it at work in a throw-away lab (`pingu demo`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pingu import __version__

COMMANDS = ("check-config", "run", "demo", "status")
NOT_ROOT = "pingu demo needs root: it creates network namespaces; run: sudo pingu demo"


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
        description=(
            "Read FILE as the daemon would and print its effective settings, its warnings "
            "and how long a dead uplink takes to be detected, or every problem at once. "
            "Exit status: 0 valid, 1 not. Nothing is touched."
        ),
    )
    check.add_argument(
        "file", metavar="FILE", help="the configuration file (JSON, comments allowed)"
    )
    run = commands.add_parser(
        "run",
        help="run the daemon (as root)",
        description=(
            "Run the daemon in the foreground until SIGTERM or SIGINT (SIGHUP reloads FILE, "
            "SIGUSR1 logs every uplink's state). Needs CAP_NET_ADMIN and CAP_NET_RAW. Exit "
            "status: 0 after a clean stop, 1 when it cannot start (before touching any route)."
        ),
    )
    _daemon_options(run)
    demo = commands.add_parser(
        "demo",
        help="show failover live in a throw-away lab of network namespaces (as root)",
        description=(
            "Build a lab of network namespaces (two Ethernet uplinks, one point-to-point "
            "uplink), run the daemon in it, cut the primary, restore it, cut everything, "
            "then remove the lab. Your own network is not touched."
        ),
    )
    demo.add_argument(
        "--step-pause",
        type=_seconds,
        default=3.0,
        metavar="SECONDS",
        help="time to read each step before the next one (default 3)",
    )
    _status_command(commands)
    return top


def _status_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser(
        "status",
        help="show what the running daemon is doing and why (asks it on its control socket)",
        description="Ask the running daemon, on its control socket, for every uplink's "
        "state, gateway, route and last rounds. "
        "Exit status: 0 shown, 1 the daemon answered with an error, "
        "3 not running, 4 permission denied, 5 no answer in time. With --check: 0 while at "
        "least one uplink is up and routed (of the family, with --family), 1 when none is, "
        "and the codes above when there is no answer.",
    )
    shown = status.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="the status document, for scripts")
    shown.add_argument(
        "--check",
        action="store_true",
        help="print nothing; exit 0 while an uplink is up and routed (keepalived's track_script)",
    )
    status.add_argument(
        "--family",
        choices=("ipv4", "ipv6"),
        help="with --check: only uplinks routed in this family count",
    )
    where = status.add_mutually_exclusive_group()
    where.add_argument(
        "--socket", metavar="PATH", help="the control socket (default /run/pingu/control.sock)"
    )
    where.add_argument(
        "--config", "-c", metavar="FILE", help="use the control_socket of this configuration"
    )
    status.add_argument(
        "--timeout",
        type=_timeout,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the daemon's answer (default 5)",
    )


def _timeout(text: str) -> float:
    value = float(text)
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{text}: must be more than 0 and at most 600 seconds")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 600:
        raise argparse.ArgumentTypeError(f"{text}: must be between 0 and 600 seconds")
    return value


def _daemon_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        required=True,
        metavar="FILE",
        help="the configuration file (see pingu.json(5))",
    )
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
        # Imported when used: it brings asyncio and the configuration model, two thirds of
        # what `pingu --version` or `pingu --help` would otherwise spend starting.
        from pingu.entrypoints.check_config import check_config  # noqa: PLC0415

        return check_config(args.file, sys.stdout, sys.stderr)
    if args.command == "run":
        from pingu.entrypoints.runtime import run_daemon  # noqa: PLC0415 (heavy imports)

        return run_daemon(args.config, verbose=args.verbose)
    if args.command == "demo":
        return demo(args.step_pause)
    if args.command == "status":
        return status(args)
    parser().print_help(sys.stderr)
    return 2


def status(args: argparse.Namespace) -> int:
    """`pingu status`: the table, the JSON document, or (--check) only an exit status."""
    from pingu.entrypoints.status import check_status, show_status  # noqa: PLC0415

    if args.family is not None and not args.check:
        sys.stderr.write("pingu status: error: --family is for --check only\n")
        return 2
    if args.check:
        return check_status(args.socket, args.config, family=args.family, timeout=args.timeout)
    return show_status(
        args.socket,
        args.config,
        as_json=args.json,
        out=sys.stdout,
        err=sys.stderr,
        timeout=args.timeout,
    )


def demo(step_pause: float) -> int:
    """`pingu demo`: refuse clearly without root, before importing the lab."""
    if os.geteuid() != 0:
        sys.stderr.write(NOT_ROOT + "\n")
        return 2
    from pingu.entrypoints.demo import run_demo  # noqa: PLC0415 (the lab, only when asked)

    return run_demo(sys.stdout, step_pause)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
