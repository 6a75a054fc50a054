"""The asyncio shell around the core: feeds it events, carries out its commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any

from pingu.adapters.config_file import load_config
from pingu.adapters.netlink import RouteChangeFailed
from pingu.domain.commands import (
    Command,
    DeleteRoute,
    InstallRoute,
    RemoveRoute,
    RestoreRoute,
    RoundJudged,
    RouteCaptured,
    RunScript,
    StartProbe,
    StateChanged,
)
from pingu.domain.config import Config
from pingu.domain.core import Core
from pingu.domain.errors import ConfigError
from pingu.domain.events import (
    Event,
    ProbeFinished,
    RouteRefused,
    ScriptFinished,
    TimerFired,
)
from pingu.domain.model import RoundResult
from pingu.domain.ports import Clock, Prober, RouteTable, ScriptRunner
from pingu.entrypoints.containers import Adapters

log = logging.getLogger("pingu")

STOP_TIMEOUT_S = 5.0
MONITOR_RESTART_S = 1.0


class _Stop:
    """Queue sentinel: the daemon was asked to stop."""


class Daemon:
    """One running pingu: a decider loop over an event queue, a monitor, rounds and scripts."""

    def __init__(
        self,
        config: Config,
        route_table: RouteTable,
        prober: Prober,
        scripts: ScriptRunner,
        clock: Clock,
    ) -> None:
        self.config = config
        self.route_table = route_table
        self.prober = prober
        self.scripts = scripts
        self.clock = clock
        self.core = Core(config, clock.monotonic())
        self.queue: asyncio.Queue[Event | _Stop] = asyncio.Queue()
        self._workers: set[asyncio.Task[None]] = set()

    def request_stop(self) -> None:
        self.queue.put_nowait(_Stop())

    async def run(self) -> None:
        """Run until `request_stop`; then stop rounds and scripts and restore the table."""
        monitor = asyncio.create_task(self._monitor(), name="netlink-monitor")
        try:
            await self._decide()
        finally:
            monitor.cancel()
            for task in list(self._workers):
                task.cancel()
            pending = [monitor, *self._workers]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*pending, return_exceptions=True), STOP_TIMEOUT_S
                )
            await self._execute_all(self.core.stop(), stopping=True)
            log.info("stopped: captured routes restored, pingu's routes removed")

    async def _monitor(self) -> None:
        while True:
            try:
                async for event in self.route_table.events():
                    self.queue.put_nowait(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("route monitor failed; restarting it in %.0f s", MONITOR_RESTART_S)
            await asyncio.sleep(MONITOR_RESTART_S)

    async def _decide(self) -> None:
        while True:
            deadline = self.core.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.monotonic())
            try:
                item = await asyncio.wait_for(self.queue.get(), timeout)
            except TimeoutError:
                item = TimerFired()
            if isinstance(item, _Stop):
                return
            log.debug("event %s", item)
            commands = self.core.handle(item, self.clock.monotonic())
            await self._execute_all(commands)

    async def _execute_all(self, commands: list[Command], stopping: bool = False) -> None:
        for command in commands:
            try:
                await self._execute(command, stopping)
            except RouteChangeFailed as error:
                log.error("route change refused by the kernel: %s", error)
                if isinstance(command, InstallRoute) and not stopping:
                    self.queue.put_nowait(RouteRefused(command.route, str(error)))
            except Exception:
                log.exception("could not carry out %s", command)

    async def _execute(self, command: Command, stopping: bool) -> None:
        match command:
            case InstallRoute(route=route):
                await self.route_table.install(route)
                log.info("installed %s", route.describe())
            case RemoveRoute(route=route):
                await self.route_table.remove(route)
                log.info("removed %s", route.describe())
            case DeleteRoute(route=route):
                await self.route_table.delete_foreign(route)
                log.debug("deleted captured %s", route.describe())
            case RestoreRoute(route=route):
                await self.route_table.install(route)
                log.info("restored %s", route.describe())
            case StartProbe() if not stopping:
                self._spawn(self._round(command), f"round-{command.uplink}")
            case RunScript() if not stopping:
                self._spawn(self._script(command), f"script-{command.uplink}")
            case RouteCaptured(uplink=uplink, route=route, gateway_changed=changed):
                what = "new gateway" if changed else "gateway"
                log.info(
                    "%s: captured %s (%s %s)",
                    uplink,
                    route.describe(),
                    what,
                    route.gateway or "none: point-to-point",
                )
            case RoundJudged(uplink=uplink, passed=passed, reason=reason):
                log.log(
                    logging.DEBUG if passed else logging.INFO,
                    "%s: round %s: %s",
                    uplink,
                    "passed" if passed else "failed",
                    reason,
                )
            case StateChanged(uplink=uplink, old=old, new=new, reason=reason):
                log.warning("%s %s -> %s: %s", uplink, old, new, reason)
            case _:
                pass

    def _spawn(self, work: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _round(self, probe: StartProbe) -> None:
        try:
            result = await self.prober.run_round(probe)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("%s: round failed in the prober", probe.uplink)
            result = RoundResult((), error=f"prober error: {error}")
        self.queue.put_nowait(ProbeFinished(probe.uplink, result, probe.round_id))

    async def _script(self, script: RunScript) -> None:
        returncode: int | None = None
        try:
            returncode = await self.scripts.run(script)
        finally:
            self.queue.put_nowait(ScriptFinished(script.uplink, script.script, returncode))

    def log_state(self) -> None:
        """SIGUSR1: one line per uplink with its health, gateway and route."""
        for uplink in self.core.uplinks.values():
            gateway = uplink.lease.gateway if uplink.lease else None
            log.info(
                "%s: %s, gateway %s, route %s, last verdict: %s",
                uplink.name,
                uplink.health.health.value,
                gateway if uplink.lease else "not learned",
                uplink.installed.describe() if uplink.installed else "none",
                uplink.last_verdict.reason if uplink.last_verdict else "none yet",
            )


def configure_logging(verbose: bool) -> None:
    """journald adds timestamps itself; a terminal gets them from us."""
    under_journald = "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(message)s" if under_journald else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt)
    if not verbose:
        logging.getLogger("pyroute2").setLevel(logging.WARNING)
        logging.getLogger("scapy").setLevel(logging.ERROR)


async def serve(config: Config, adapters: Adapters) -> None:
    """Run the daemon with `adapters` until SIGTERM or SIGINT."""
    daemon = Daemon(
        config,
        adapters.route_table(),
        adapters.prober(),
        adapters.scripts(),
        adapters.clock(),
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.request_stop)
    loop.add_signal_handler(signal.SIGUSR1, daemon.log_state)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: log.warning("SIGHUP: reload is not supported yet; config unchanged")
    )
    log.info("pingu started: %d uplinks, proto %d", len(config.uplinks), config.proto)
    await daemon.run()


def run_daemon(config_path: str, verbose: bool = False) -> int:
    """`pingu run`: validate the configuration, then run until stopped."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        sys.stderr.write(f"config {config_path}: {len(error.problems)} problem(s):\n")
        for problem in error.problems:
            sys.stderr.write(f"  {problem}\n")
        return 1
    configure_logging(verbose)
    for warning in config.warnings:
        log.warning("config: %s", warning)
    asyncio.run(serve(config, Adapters()))
    return 0
