"""The asyncio shell around the core: feeds it events, carries out its actions, logs its
reports, and owns the daemon's life (start-up, signals, systemd, shutdown). What is shown
and how it is worded is the read side's (:mod:`pingu.domain.views`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from pingu import __version__
from pingu.adapters.config_file import ConfigReloader, load_config
from pingu.adapters.privileges import privilege_problem
from pingu.adapters.systemd import Notifier, watchdog_interval
from pingu.domain.commands import (
    Action,
    DeleteCapturedRoute,
    EndFlows,
    InstallOwnRoute,
    RemoveOwnRoute,
    RestoreCapturedRoute,
    RunScript,
    ScriptKind,
    StartProbe,
)
from pingu.domain.config import REJECTS_RELOAD, Config, OnExit, keep_running, restart_only
from pingu.domain.core import Core, Decision
from pingu.domain.errors import ConfigError
from pingu.domain.events import (
    Event,
    FlowsEnded,
    ProbeFinished,
    RouteInstalled,
    RouteRefused,
    ScriptFinished,
    TimerFired,
)
from pingu.domain.model import Family, RoundResult, Route
from pingu.domain.ports import (
    Clock,
    Flows,
    Prober,
    Resync,
    RouteChangeFailed,
    RouterAdverts,
    RouteTable,
    ScriptRunner,
    StateStore,
)
from pingu.domain.views import (
    Clocks,
    Level,
    Line,
    flows_line,
    narrate,
    state_dump,
    status_document,
    summary_line,
)
from pingu.entrypoints.persistence import Keeper

log = logging.getLogger("pingu")

STOP_TIMEOUT_S = 5.0
SUBSCRIBE_TIMEOUT_S = 5.0  # start-up waits this long at most for the route monitor
MONITOR_RESTART_S = 1.0
# Reports of routes added lead to more changes (a captured route deleted once pingu's is
# in); the core needs two levels at most; anything deeper is a defect, cut and logged.
MAX_REPORT_DEPTH = 8
LEVELS = {
    Level.DEBUG: logging.DEBUG,
    Level.INFO: logging.INFO,
    Level.WARNING: logging.WARNING,
    Level.ERROR: logging.ERROR,
}


class _Stop:
    """Queue sentinel: the daemon was asked to stop."""


class _Reload:
    """Queue sentinel: the daemon was asked to reload its configuration file."""


Item = Event | Resync | _Stop | _Reload


class Daemon:
    """One running pingu: a decider loop over an event queue, a monitor, rounds and scripts."""

    def __init__(
        self,
        config: Config,
        route_table: RouteTable,
        prober: Prober,
        scripts: ScriptRunner,
        clock: Clock,
        *,
        state_store: StateStore | None = None,
        gateways_store: StateStore | None = None,
        config_path: str | None = None,
        wall: Callable[[], float] = time.time,
        boot: str = "",
        notifier: Notifier | None = None,
        router_adverts: RouterAdverts | None = None,
        flows: Flows | None = None,
    ) -> None:
        self.config = config
        self.router_adverts = router_adverts
        self.flows = flows
        self.route_table = route_table
        self.prober = prober
        self.scripts = scripts
        self.clock = clock
        self.config_path = config_path
        self.core = Core(config, clock.monotonic())
        # The start on both clocks, so that saved and shown times do not jitter.
        self.clocks = Clocks(clock.monotonic(), wall())
        self.keeper = Keeper(
            self.core,
            state=state_store,
            state_path=config.state_file,
            gateways=gateways_store,
            gateways_path=config.gateways_file,
            boot=boot,
            started_mono=self.clocks.started_mono,
            started_wall=self.clocks.started_wall,
        )
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.notifier = notifier or Notifier(None)
        self._workers: set[asyncio.Task[None]] = set()
        self._hook_locks: dict[str, asyncio.Lock] = {}
        self._rounds: dict[tuple[str, Family], asyncio.Task[None]] = {}
        self._status_line = ""
        self._reloader = ConfigReloader()
        # Set by the monitor's first subscription; until start-up has read the table, the
        # monitor's first Resync is that read's job, not the decider's.
        self._subscribed = asyncio.Event()
        self._startup_read = False

    def request_stop(self) -> None:
        self.queue.put_nowait(_Stop())

    def request_reload(self) -> None:
        self.queue.put_nowait(_Reload())

    # -- life ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `request_stop`; then stop rounds and scripts and leave the table."""
        self.keeper.load(self.clock.monotonic())
        # Subscribe before the start-up read: a change between the two is then both in the
        # read and queued as an event, never in neither.
        monitor = asyncio.create_task(self._monitor(), name="netlink-monitor")
        try:
            await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "start-up: the route monitor did not subscribe within %.0f s; going on, "
                "its first dump will be compared with the table when it does",
                SUBSCRIBE_TIMEOUT_S,
            )
        await self._start_up()
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        adverts = asyncio.create_task(self._hear_adverts(), name="router-adverts")
        if self.flows is not None:
            self._spawn(self._check_flows(), "flows-check")
        try:
            await self._decide()
        finally:
            self.notifier.stopping("stopping: stopping rounds and scripts, leaving the table")
            watchdog.cancel()
            monitor.cancel()
            adverts.cancel()
            for task in list(self._workers):
                task.cancel()
            pending = [monitor, adverts, *self._workers]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*pending, return_exceptions=True), STOP_TIMEOUT_S
                )
            await self._finish()

    async def _start_up(self) -> None:
        """Capture what the table holds now, so READY=1 means routes are in pingu's hands."""
        self._startup_read = True
        try:
            snapshot = await self.route_table.snapshot(initial=True)
        except Exception:
            log.exception("start-up: could not read the table; waiting for the monitor's dump")
        else:
            await self._carry_out(self.core.handle(snapshot, self.clock.monotonic()))
        if self.keeper.adopt_gateways(self.clock.monotonic()):
            await self._carry_out(self.core.handle(TimerFired(), self.clock.monotonic()))
        self.keeper.save()
        self._status_line = summary_line(self.core.view())
        self.notifier.ready(self._status_line)
        log.info("ready: %s", self._status_line)

    async def _finish(self) -> None:
        await self.keeper.settled()
        self.keeper.save(final=True)
        if self.config.on_exit is OnExit.KEEP:
            log.info("stopped: pingu's routes kept in place (on_exit: keep)")
            return
        stop = self.core.stop(self.clock.monotonic())
        await self._carry_out(Decision(tuple(stop)), stopping=True)
        log.info("stopped: captured routes restored, pingu's routes removed")

    async def _watchdog(self) -> None:
        """WATCHDOG=1 from the event loop itself: a stalled loop stops it, and systemd acts."""
        interval = watchdog_interval()
        if interval is None or not self.notifier.enabled:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    # -- the decider ---------------------------------------------------------------------

    async def _decide(self) -> None:
        check_at = self._next_check()
        while True:
            due = [t for t in (self.core.next_deadline(), check_at) if t is not None]
            timeout = max(0.0, min(due) - self.clock.monotonic()) if due else None
            try:
                item: Item = await asyncio.wait_for(self.queue.get(), timeout)
            except TimeoutError:
                item = TimerFired()
            if isinstance(item, _Stop):
                return
            if isinstance(item, _Reload):
                self.notifier.reloading("reloading the configuration")
                await self._reload()
                self.notifier.ready(self._status_line)
            elif isinstance(item, Resync):
                await self._check_table("the route monitor (re)started")
                check_at = self._next_check()
            else:
                log.debug("event %s", item)
                await self._carry_out(self.core.handle(item, self.clock.monotonic()))
            if check_at is not None and self.clock.monotonic() >= check_at:
                await self._check_table("periodic")
                check_at = self._next_check()
            self.keeper.save()
            self._report_status()

    def _next_check(self) -> float | None:
        interval = self.config.table_check_interval
        return None if interval is None else self.clock.monotonic() + interval

    async def _check_table(self, why: str) -> None:
        """Read the whole table and let the core repair what differs from its beliefs.

        Done on the decider itself, so that no change of pingu's runs while the table is
        read (a read older than pingu's last change would look like a difference)."""
        try:
            snapshot = await self.route_table.snapshot()
        except Exception as error:
            log.warning("table check (%s) failed: %s", why, error)
            return
        log.debug(
            "table check (%s): %d links, %d default routes",
            why,
            len(snapshot.links),
            len(snapshot.routes),
        )
        await self._carry_out(self.core.handle(snapshot, self.clock.monotonic()))

    def _report_status(self) -> None:
        """Send the one-line summary `systemctl status` shows, when it changes."""
        line = summary_line(self.core.view())
        if line != self._status_line:
            self._status_line = line
            self.notifier.status(line)

    # -- carrying out a decision ---------------------------------------------------------

    async def _carry_out(self, decision: Decision, stopping: bool = False, depth: int = 0) -> None:
        """Log the decision's reports, carry out its actions in order (each logged once
        done); then tell the core which routes it asked for are in the table now (or were
        refused), and carry out what it answers, at once."""
        narration = narrate(decision.actions, decision.reports, self.core.view())
        for line in narration.reports:
            _log(line)
        answers: list[RouteInstalled | RouteRefused] = []
        for action, told in zip(decision.actions, narration.actions, strict=True):
            added = _added(action)
            try:
                await self._act(action, stopping)
            except RouteChangeFailed as error:
                log.error("route change refused by the kernel: %s", error)
                answers += [RouteRefused(added, str(error))] if added else []
                continue
            except Exception as error:
                log.exception("could not carry out %s", action)
                answers += [RouteRefused(added, str(error))] if added else []
                continue
            if told is not None:
                _log(told)
            answers += [RouteInstalled(added)] if added else []
        if stopping or not answers:
            return
        if depth >= MAX_REPORT_DEPTH:
            log.error("route reports still leading to changes after %d levels: stopped", depth)
            return
        for answer in answers:
            await self._carry_out(self.core.handle(answer, self.clock.monotonic()), depth=depth + 1)

    async def _act(self, action: Action, stopping: bool) -> None:
        match action:
            case InstallOwnRoute(route=route) | RestoreCapturedRoute(route=route):
                await self.route_table.install(route)
            case RemoveOwnRoute(route=route):
                await self.route_table.remove(route)
            case DeleteCapturedRoute(route=route):
                await self.route_table.delete_foreign(route)
            case StartProbe() if not stopping:
                # A new round while one runs means the core abandoned that one (its gateway
                # or link changed): stop it now, with its socket and timers.
                key = (action.uplink, action.family)
                running = self._rounds.get(key)
                if running is not None and not running.done():
                    running.cancel()
                self._rounds[key] = self._spawn(
                    self._round(action), f"round-{action.uplink}-{action.family.label}"
                )
            case RunScript() if not stopping:
                self._spawn(self._script(action), f"script-{action.uplink}")
            case EndFlows() if not stopping and self.flows is not None:
                self._spawn(self._end_flows(action), f"flows-{action.uplink}")
            case _:
                pass

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)
        return task

    async def _round(self, probe: StartProbe) -> None:
        try:
            result = await self.prober.run_round(probe)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("%s: round failed in the prober", probe.uplink)
            result = RoundResult((), error=f"prober error: {error}")
        self.queue.put_nowait(ProbeFinished(probe.uplink, result, probe.round_id, probe.family))

    async def _check_flows(self) -> None:
        assert self.flows is not None
        try:
            await self.flows.check()
        except Exception:
            log.exception("checking what the kernel offers to end flows failed")

    async def _end_flows(self, request: EndFlows) -> None:
        """Off the decisions' path: a large conntrack table takes a while to go through."""
        assert self.flows is not None
        try:
            done = await self.flows.end(request)
        except Exception as error:  # the port never raises; this is the last guard
            log.exception("%s: ending flows failed", request.uplink)
            done = FlowsEnded(request.uplink, request.family, 0, 0, str(error))
        _log(flows_line(request, done))
        self.queue.put_nowait(done)

    async def _script(self, script: RunScript) -> None:
        returncode: int | None = None
        try:
            if script.kind is ScriptKind.RESET:
                returncode = await self.scripts.run(script)
            else:
                # up/down hooks of one uplink run one at a time, in the order of the changes.
                lock = self._hook_locks.setdefault(script.uplink, asyncio.Lock())
                async with lock:
                    returncode = await self.scripts.run(script)
        finally:
            finished = ScriptFinished(script.uplink, script.script, returncode, script.kind)
            self.queue.put_nowait(finished)

    # -- the route monitor ---------------------------------------------------------------

    async def _monitor(self) -> None:
        while True:
            try:
                async for event in self.route_table.events():
                    if isinstance(event, Resync) and not self._subscribed.is_set():
                        self._subscribed.set()
                        if not self._startup_read:
                            continue  # the start-up read, about to happen, covers it
                    self.queue.put_nowait(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("route monitor failed; restarting it in %.0f s", MONITOR_RESTART_S)
            await asyncio.sleep(MONITOR_RESTART_S)

    async def _hear_adverts(self) -> None:
        """Router advertisements into the queue (their withdrawals reach no route table)."""
        if self.router_adverts is None:
            return
        while True:
            try:
                async for advert in self.router_adverts.events():
                    self.queue.put_nowait(advert)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "router advertisement listener failed; restarting it in %.0f s",
                    MONITOR_RESTART_S,
                )
            await asyncio.sleep(MONITOR_RESTART_S)

    # -- reload ------------------------------------------------------------------------------

    async def _reload(self) -> None:
        path = self.config_path
        if path is None:
            log.warning("SIGHUP: no configuration file to reload")
            return
        # Read off the loop, bounded in time: decisions go on meanwhile, and the result
        # comes back as another reload request.
        loaded = self._reloader.request(path, self.request_reload)
        if loaded is None:
            return
        if isinstance(loaded, ConfigError):
            log.error(
                "reload of %s rejected: %d problem(s); the running configuration stays",
                path,
                len(loaded.problems),
            )
            for problem in loaded.problems:
                log.error("  %s", problem)
            return
        config = loaded
        changed = restart_only(self.config, config)
        if REJECTS_RELOAD.intersection(changed):
            log.error(
                "reload of %s rejected: proto changed (%d -> %d), which needs a restart; "
                "the running configuration stays",
                path,
                self.config.proto,
                config.proto,
            )
            return
        for warning in config.warnings:
            log.warning("config: %s", warning)
        if changed:
            log.warning("reload: %s take effect at the next restart", ", ".join(changed))
            # Until then the running values stay, so that what is shown is what is in use.
            config = keep_running(config, self.config, changed)
        old = {u.name for u in self.config.uplinks}
        new = {u.name for u in config.uplinks}
        self.config = config
        await self._carry_out(self.core.reconfigure(config, self.clock.monotonic()))
        log.info(
            "reloaded %s: %d uplinks (added: %s; removed: %s)",
            path,
            len(new),
            ", ".join(sorted(new - old)) or "none",
            ", ".join(sorted(old - new)) or "none",
        )
        await self._check_table("reload: new uplinks")

    # -- what operators ask ------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """Everything `pingu status` shows, as stable JSON (see README: status)."""
        return status_document(
            self.core.view(),
            now=self.clock.monotonic(),
            clocks=self.clocks,
            version=__version__,
            pid=os.getpid(),
        )

    def log_state(self) -> None:
        """SIGUSR1: one line per uplink with its health, gateway and route."""
        for line in state_dump(self.core.view()):
            log.info("%s", line)


def _added(action: Action) -> Route | None:
    """The route an action puts in the table, whose outcome the core is told of."""
    match action:
        case InstallOwnRoute(route=route) | RestoreCapturedRoute(route=route):
            return route
        case _:
            return None


def _log(line: Line) -> None:
    log.log(LEVELS[line.level], "%s", line.text)


def configure_logging(verbose: bool) -> None:
    """journald adds timestamps itself; a terminal gets them from us."""
    under_journald = "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(message)s" if under_journald else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt)
    # -v is for pingu's own detail (every echo, every event), not pyroute2's internals
    # (a line per netlink message). A filter on our handlers, not a level on pyroute2's
    # logger: pyroute2 sets that level to 0 when it is first imported, after this.
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_libraries)


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """Only warnings and worse of pyroute2."""
    return record.levelno >= logging.WARNING or not record.name.startswith("pyroute2")


def run_daemon(config_path: str, verbose: bool = False) -> int:
    """`pingu run`: check privileges and the configuration, then run until stopped."""
    refused = privilege_problem()
    if refused is not None:
        sys.stderr.write(refused + "\n")
        return 1
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
    from pingu.entrypoints.containers import serve  # noqa: PLC0415 (the adapters' imports)
    from pingu.entrypoints.operations import StartupError  # noqa: PLC0415

    try:
        asyncio.run(serve(config, config_path=config_path))
    except StartupError as error:
        log.error("not started, no route touched: %s", error)
        return 1
    return 0
