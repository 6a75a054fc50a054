"""The asyncio shell around the core: feeds it events, carries out its commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pingu import __version__
from pingu.adapters.config_file import ConfigReloader, load_config
from pingu.adapters.gateways_file import gateways_document, parse_gateways
from pingu.adapters.privileges import privilege_problem
from pingu.adapters.state_file import WriteFailures, boot_id
from pingu.adapters.systemd import Notifier, watchdog_interval
from pingu.domain.commands import (
    RESET,
    Command,
    DeleteRoute,
    InstallRoute,
    LastResort,
    RemoveRoute,
    RestoreRoute,
    RoundJudged,
    RouteCaptured,
    RunScript,
    StartProbe,
    StateChanged,
    TableRepaired,
)
from pingu.domain.config import REJECTS_RELOAD, Config, OnExit, keep_running, restart_only
from pingu.domain.core import Core, Uplink
from pingu.domain.errors import ConfigError
from pingu.domain.events import (
    Event,
    ProbeFinished,
    RouteInstalled,
    RouteRefused,
    ScriptFinished,
    TimerFired,
)
from pingu.domain.model import RoundResult, TargetResult
from pingu.domain.ports import (
    Clock,
    Prober,
    Resync,
    RouteChangeFailed,
    RouteTable,
    ScriptRunner,
    StateStore,
)
from pingu.domain.state import StateError, parse_state, state_document
from pingu.entrypoints.containers import Adapters
from pingu.entrypoints.operations import StartupError, operations

log = logging.getLogger("pingu")

STOP_TIMEOUT_S = 5.0
MONITOR_RESTART_S = 1.0
# Reports of routes added lead to more changes (a captured route deleted once pingu's is
# in); the core needs two levels at most; anything deeper is a defect, cut and logged.
MAX_REPORT_DEPTH = 8


class _Stop:
    """Queue sentinel: the daemon was asked to stop."""


class _Reload:
    """Queue sentinel: the daemon was asked to reload its configuration file."""


@dataclass
class UplinkCounters:
    """What an uplink has cost and done since start-up (status and metrics)."""

    rounds: int = 0
    echoes_sent: int = 0
    echoes_lost: int = 0
    echoes_abandoned: int = 0
    state_changes: int = 0
    reset_script_runs: int = 0
    route_changes: int = 0


STATUS_VERSION = 1


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
    ) -> None:
        self.config = config
        self.route_table = route_table
        self.prober = prober
        self.scripts = scripts
        self.clock = clock
        self.state_store = state_store
        self.gateways = _Kept(gateways_store, f"gateways file {config.gateways_file}")
        self.config_path = config_path
        self.core = Core(config, clock.monotonic())
        self.queue: asyncio.Queue[Event | Resync | _Stop | _Reload] = asyncio.Queue()
        self._workers: set[asyncio.Task[None]] = set()
        self._hook_locks: dict[str, asyncio.Lock] = {}
        self._rounds: dict[str, asyncio.Task[None]] = {}
        # Wall time of monotonic 0 as seen at start, so saved times do not jitter.
        self._boot = boot
        self._mono0 = clock.monotonic()
        self._wall0 = wall()
        self._saved: dict[str, object] | None = None
        self._saving: asyncio.Task[None] | None = None
        self.counters: dict[str, UplinkCounters] = {}
        self.notifier = notifier or Notifier(None)
        self._status_line = ""
        self._told: dict[int, str] = {}
        self._reloader = ConfigReloader()
        self._write_failures = WriteFailures()

    def request_stop(self) -> None:
        self.queue.put_nowait(_Stop())

    def request_reload(self) -> None:
        self.queue.put_nowait(_Reload())

    async def run(self) -> None:
        """Run until `request_stop`; then stop rounds and scripts and leave the table."""
        self._load_state()
        await self._start_up()
        monitor = asyncio.create_task(self._monitor(), name="netlink-monitor")
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        try:
            await self._decide()
        finally:
            self.notifier.stopping("stopping: stopping rounds and scripts, leaving the table")
            watchdog.cancel()
            monitor.cancel()
            for task in list(self._workers):
                task.cancel()
            pending = [monitor, *self._workers]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*pending, return_exceptions=True), STOP_TIMEOUT_S
                )
            await self._finish()

    async def _start_up(self) -> None:
        """Capture what the table holds now, so READY=1 means routes are in pingu's hands."""
        try:
            snapshot = await self.route_table.snapshot(initial=True)
        except Exception:
            log.exception("start-up: could not read the table; waiting for the monitor's dump")
        else:
            await self._execute_all(self.core.handle(snapshot, self.clock.monotonic()))
        await self._adopt_gateways_file()
        self._save_state()
        self._status_line = self._status_summary()
        self.notifier.ready(self._status_line)
        log.info("ready: %s", self._status_line)

    async def _adopt_gateways_file(self) -> None:
        """py-pingu's gateways file, for uplinks that still know no gateway."""
        store, where = self.gateways.store, self.config.gateways_file
        if store is None:
            return
        try:
            gateways = parse_gateways(store.read())
        except StateError as error:
            log.warning("gateways file %s ignored: %s", where, error)
            return
        taken = self.core.adopt_gateways(gateways, self.clock.monotonic())
        if taken:
            log.info(
                "gateways file %s: took %s (routed once a round through them passes)",
                where,
                "; ".join(taken),
            )
            await self._execute_all(self.core.handle(TimerFired(), self.clock.monotonic()))

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
        await self._execute_all(self.core.handle(snapshot, self.clock.monotonic()))

    async def _watchdog(self) -> None:
        """WATCHDOG=1 from the event loop itself: a stalled loop stops it, and systemd acts."""
        interval = watchdog_interval()
        if interval is None or not self.notifier.enabled:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _report_status(self) -> None:
        """Send the one-line summary `systemctl status` shows, when it changes."""
        line = self._status_summary()
        if line != self._status_line:
            self._status_line = line
            self.notifier.status(line)

    def _status_summary(self) -> str:
        uplinks = list(self.core.uplinks.values())
        routed = [u.name for u in uplinks if u.installed is not None]
        down = [u.name for u in uplinks if not u.health.health.routed]
        line = f"{len(routed)}/{len(uplinks)} uplinks routed"
        if routed:
            line += f": {', '.join(routed)}"
        if down:
            line += f"; down: {', '.join(down)}"
        return line

    async def _finish(self) -> None:
        if self._saving is not None:
            with contextlib.suppress(Exception):
                await self._saving
        await self.gateways.settled()
        self._save_state(final=True)
        if self.config.on_exit is OnExit.KEEP:
            log.info("stopped: pingu's routes kept in place (on_exit: keep)")
            return
        await self._execute_all(self.core.stop(), stopping=True)
        log.info("stopped: captured routes restored, pingu's routes removed")

    # -- state that survives a restart --------------------------------------------------

    def _load_state(self) -> None:
        store = self.state_store
        if store is None:
            return
        where = self.config.state_file
        try:
            document = store.read()
            if document is None:
                log.info("state file %s: none yet, starting fresh", where)
                return
            saved = parse_state(document, self._boot, self._wall0)
        except StateError as error:
            log.warning("state file %s ignored: %s", where, error)
            return
        taken = self.core.adopt_state(saved, self.clock.monotonic())
        if isinstance(document, dict) and document.get("boot_id") != self._boot:
            log.info("state file %s: saved in another boot, gateways not reused", where)
        if taken:
            log.info("state file %s: adopted %s", where, "; ".join(taken))

    def _state_document(self) -> dict[str, object]:
        saved = self.core.saved_state(self._mono0)
        return state_document(saved, self._boot, self._wall0)

    def _save_state(self, final: bool = False) -> None:
        """Write the state file (and the gateways file) when what they hold changed."""
        leases = {name: u.lease for name, u in self.core.uplinks.items()}
        self.gateways.save(gateways_document(leases), final=final)
        store = self.state_store
        if store is None:
            return
        document = self._state_document()
        if document == self._saved:
            return
        if final:
            self._write(store, document)
            return
        if self._saving is not None and not self._saving.done():
            return  # the running write is followed by another check when it ends
        self._saving = asyncio.create_task(self._write_later(store, document))

    async def _write_later(self, store: StateStore, document: dict[str, object]) -> None:
        await asyncio.to_thread(self._write, store, document)
        self._save_state()  # what changed while the file was being written

    def _write(self, store: StateStore, document: dict[str, object]) -> None:
        where = f"state file {self.config.state_file}"
        try:
            store.write(document)
        except OSError as error:
            self._write_failures.failed(log, where, error)  # once, then at a bounded rate
            return
        self._write_failures.succeeded(log, where)
        self._saved = document

    # -- reload ---------------------------------------------------------------------------

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
            error = loaded
            log.error(
                "reload of %s rejected: %d problem(s); the running configuration stays",
                path,
                len(error.problems),
            )
            for problem in error.problems:
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
        await self._execute_all(self.core.reconfigure(config, self.clock.monotonic()))
        log.info(
            "reloaded %s: %d uplinks (added: %s; removed: %s)",
            path,
            len(new),
            ", ".join(sorted(new - old)) or "none",
            ", ".join(sorted(old - new)) or "none",
        )
        await self._check_table("reload: new uplinks")

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
        check_at = self._next_check()
        while True:
            due = [t for t in (self.core.next_deadline(), check_at) if t is not None]
            timeout = max(0.0, min(due) - self.clock.monotonic()) if due else None
            try:
                item: Event | Resync | _Stop | _Reload = await asyncio.wait_for(
                    self.queue.get(), timeout
                )
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
                await self._execute_all(self.core.handle(item, self.clock.monotonic()))
            if check_at is not None and self.clock.monotonic() >= check_at:
                await self._check_table("periodic")
                check_at = self._next_check()
            self._save_state()
            self._report_status()

    def _next_check(self) -> float | None:
        interval = self.config.table_check_interval
        return None if interval is None else self.clock.monotonic() + interval

    async def _execute_all(
        self, commands: list[Command], stopping: bool = False, depth: int = 0
    ) -> None:
        """Carry out `commands` in order; then tell the core which routes it asked for are
        in the table now (or were refused), and carry out what it answers, at once."""
        self._told = self._decisions(commands)
        reports: list[RouteInstalled | RouteRefused] = []
        for command in commands:
            self._count(command)
            added = command.route if isinstance(command, InstallRoute | RestoreRoute) else None
            try:
                await self._execute(command, stopping)
            except RouteChangeFailed as error:
                log.error("route change refused by the kernel: %s", error)
                if added is not None:
                    reports.append(RouteRefused(added, str(error)))
                continue
            except Exception as error:
                log.exception("could not carry out %s", command)
                if added is not None:
                    reports.append(RouteRefused(added, str(error)))
                continue
            if added is not None:
                reports.append(RouteInstalled(added))
        if stopping or not reports:
            return
        if depth >= MAX_REPORT_DEPTH:
            log.error("route reports still leading to changes after %d levels: stopped", depth)
            return
        follow: list[Command] = []
        for report in reports:
            follow += self.core.handle(report, self.clock.monotonic())
        if follow:
            await self._execute_all(follow, stopping, depth + 1)

    async def _execute(self, command: Command, stopping: bool) -> None:
        match command:
            case InstallRoute(route=route):
                await self.route_table.install(route)
                log.log(self._route_level(command), "installed %s", route.describe())
            case RemoveRoute(route=route):
                await self.route_table.remove(route)
                log.log(self._route_level(command), "removed %s", route.describe())
            case DeleteRoute(route=route):
                await self.route_table.delete_foreign(route)
                log.debug("deleted captured %s", route.describe())
            case RestoreRoute(route=route):
                await self.route_table.install(route)
                log.info("restored %s", route.describe())
            case StartProbe() if not stopping:
                # A new round while one runs means the core abandoned that one (its gateway
                # or link changed): stop it now, with its socket and timers.
                running = self._rounds.get(command.uplink)
                if running is not None and not running.done():
                    running.cancel()
                self._rounds[command.uplink] = self._spawn(
                    self._round(command), f"round-{command.uplink}"
                )
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
                log.warning(
                    "%s %s -> %s: %s%s", uplink, old, new, reason, self._told.get(id(command), "")
                )
            case LastResort(all_down=True, kept=None, reason=reason):
                log.error("ALL UPLINKS DOWN: %s", reason)
            case LastResort(all_down=True, kept=kept, reason=reason):
                log.error(
                    "ALL UPLINKS DOWN: keeping %s's route as a last resort (when_all_down: "
                    "keep_best): %s",
                    kept,
                    reason,
                )
            case LastResort(all_down=False):
                log.warning("uplinks back: no longer all down")
            case TableRepaired(uplink=uplink, what=what):
                log.warning("%s: table repaired: %s", uplink or "table", what)
            case _:
                pass

    def _decisions(self, commands: list[Command]) -> dict[int, str]:
        """What each state change in `commands` does to routes, told on its own log line.

        Maps the id of a StateChanged to its suffix (" via GW; route metric M removed"), and
        the ids of the route commands it tells of to "" (they are then logged at debug).
        """
        told: dict[int, str] = {}
        for change in commands:
            if not isinstance(change, StateChanged):
                continue
            uplink = self.core.uplinks.get(change.uplink)
            lease = uplink.lease if uplink else None
            parts = [f" via {lease.gateway}" if lease and lease.gateway else ""]
            for command in commands:
                if (
                    isinstance(command, InstallRoute | RemoveRoute)
                    and command.route.ifname == change.uplink
                ):
                    done = "installed" if isinstance(command, InstallRoute) else "removed"
                    parts.append(f"; route metric {command.route.metric} {done}")
                    told[id(command)] = ""
            if len(parts) == 1:
                state = "route kept" if uplink and uplink.installed else "no route"
                parts.append(f"; {state}")
            told[id(change)] = "".join(parts)
        return told

    def _route_level(self, command: Command) -> int:
        return logging.DEBUG if id(command) in self._told else logging.INFO

    def _count(self, command: Command) -> None:
        match command:
            case StartProbe(uplink=name):
                self._counters(name).rounds += 1
            case StateChanged(uplink=name):
                self._counters(name).state_changes += 1
            case RunScript(uplink=name, kind=kind) if kind == RESET:
                self._counters(name).reset_script_runs += 1
            case InstallRoute(route=route) | RemoveRoute(route=route):
                if route.ifname:
                    self._counters(route.ifname).route_changes += 1
            case _:
                pass

    def _counters(self, uplink: str) -> UplinkCounters:
        return self.counters.setdefault(uplink, UplinkCounters())

    def _spawn(self, work: Any, name: str) -> asyncio.Task[None]:
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
        counters = self._counters(probe.uplink)
        counters.echoes_sent += sum(t.sent for t in result.targets)
        counters.echoes_lost += sum(t.lost for t in result.targets)
        counters.echoes_abandoned += sum(t.abandoned for t in result.targets)
        self.queue.put_nowait(ProbeFinished(probe.uplink, result, probe.round_id))

    async def _script(self, script: RunScript) -> None:
        returncode: int | None = None
        try:
            if script.kind == RESET:
                returncode = await self.scripts.run(script)
            else:
                # up/down hooks of one uplink run one at a time, in the order of the changes.
                lock = self._hook_locks.setdefault(script.uplink, asyncio.Lock())
                async with lock:
                    returncode = await self.scripts.run(script)
        finally:
            finished = ScriptFinished(script.uplink, script.script, returncode, script.kind)
            self.queue.put_nowait(finished)

    def _wall(self, monotonic: float | None) -> str | None:
        """A monotonic time as an ISO 8601 UTC timestamp."""
        if monotonic is None:
            return None
        when = self._wall0 + (monotonic - self._mono0)
        return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")

    def status(self) -> dict[str, object]:
        """Everything `pingu status` shows, as stable JSON (see README: status)."""
        now = self.clock.monotonic()
        all_down, kept = self.core.all_down_state
        return {
            "status_version": STATUS_VERSION,
            "version": __version__,
            "pid": os.getpid(),
            "started_at": self._wall(self._mono0),
            "uptime_s": round(now - self._mono0, 3),
            "proto": self.config.proto,
            "on_exit": self.config.on_exit.value,
            "when_all_down": self.config.when_all_down.value,
            "all_down": all_down,
            "last_resort": kept,
            "uplinks": [self._uplink_status(u, now) for u in self.core.uplinks.values()],
        }

    def _uplink_status(self, uplink: Uplink, now: float) -> dict[str, object]:
        lease = uplink.lease
        result = uplink.last_result
        verdict = uplink.last_verdict
        last_round: dict[str, object] | None = None
        if uplink.last_round_at is not None and verdict is not None:
            last_round = {
                "at": self._wall(uplink.last_round_at),
                "passed": verdict.passed,
                "reason": verdict.reason,
                "error": result.error if result else None,
                "targets": [_target_status(t) for t in (result.targets if result else ())],
            }
        script = uplink.config.reset_script
        return {
            "name": uplink.name,
            "state": uplink.health.health.value,
            "since": self._wall(uplink.changed_at),
            "since_s": round(now - uplink.changed_at, 3),
            "why": uplink.change_reason,
            "link": {
                "present": uplink.ifindex is not None,
                "carrier": uplink.carrier,
                "admin_up": uplink.admin_up,
                "point_to_point": uplink.point_to_point,
                "address": uplink.address,
            },
            "gateway": lease.gateway if lease else None,
            "gateway_known": lease is not None,
            "metric": uplink.config.metric,
            "route_installed": uplink.installed is not None,
            "last_round": last_round,
            "round_running": uplink.probing,
            "next_round_in_s": None
            if uplink.probing
            else round(max(0.0, uplink.next_round_at - now), 3),
            "reset_script": {
                "path": script,
                "last_run": self._wall(uplink.last_script_at),
                "running": uplink.script_running,
            },
            "counters": asdict(self._counters(uplink.name)),
        }

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


def _target_status(target: TargetResult) -> dict[str, object]:
    delays = target.delays_ms
    return {
        "address": target.target,
        "sent": target.sent,
        "lost": target.lost,
        "abandoned": target.abandoned,
        "avg_ms": round(sum(delays) / len(delays), 3) if delays else None,
        "max_ms": round(max(delays), 3) if delays else None,
    }


def configure_logging(verbose: bool) -> None:
    """journald adds timestamps itself; a terminal gets them from us."""
    under_journald = "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(message)s" if under_journald else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt)
    # -v is for pingu's own detail (every echo, every event), not pyroute2's internals.
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    logging.getLogger("scapy").setLevel(logging.ERROR)


async def serve(config: Config, adapters: Adapters, config_path: str | None = None) -> None:
    """Run the daemon with `adapters` until SIGTERM or SIGINT."""
    daemon = Daemon(
        config,
        adapters.route_table(),
        adapters.prober(),
        adapters.scripts(),
        adapters.clock(),
        state_store=adapters.state_store(config.state_file) if config.state_file else None,
        gateways_store=(
            adapters.state_store(config.gateways_file) if config.gateways_file else None
        ),
        config_path=config_path,
        boot=boot_id(),
        # Taken out of the environment: scripts must not speak to systemd in pingu's name.
        notifier=Notifier.from_environment(unset=True),
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, daemon.request_stop)
    loop.add_signal_handler(signal.SIGUSR1, daemon.log_state)
    loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
    log.info(
        "pingu started: %d uplinks (%s), proto %d, on_exit %s, when_all_down %s",
        len(config.uplinks),
        ", ".join(u.name for u in config.uplinks),
        config.proto,
        config.on_exit.value,
        config.when_all_down.value,
    )
    async with operations(config, daemon.status):  # control socket, metrics
        await daemon.run()


def run_daemon(config_path: str, verbose: bool = False) -> int:
    """`pingu run`: validate the configuration, then run until stopped."""
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
    try:
        asyncio.run(serve(config, Adapters(), config_path))
    except StartupError as error:
        log.error("not started, no route touched: %s", error)
        return 1
    return 0


class _Kept:
    """A file pingu keeps up to date besides its state (py-pingu's gateways file): written
    off the loop, one write at a time, only when its content changed; failing writes are
    logged at a bounded rate, as the state file's are."""

    def __init__(self, store: StateStore | None, what: str) -> None:
        self.store = store
        self.what = what
        self._saved: dict[str, object] | None = None
        self._writing: asyncio.Task[None] | None = None
        self._wanted: dict[str, object] | None = None
        self._failures = WriteFailures()
        self._failing = False

    def save(self, document: dict[str, object], *, final: bool = False) -> None:
        if self.store is None or document == self._saved:
            return
        self._wanted = document
        if final:
            self._write(document)
        elif self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_later(), name=f"write {self.what}")

    async def settled(self) -> None:
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await self._writing

    async def _write_later(self) -> None:
        while self._wanted is not None and self._wanted != self._saved:
            await asyncio.to_thread(self._write, self._wanted)
            if self._failing:
                return  # tried again at the next change

    def _write(self, document: dict[str, object]) -> None:
        assert self.store is not None
        try:
            self.store.write(document)
        except OSError as error:
            self._failures.failed(log, self.what, error)
            self._failing = True
            return
        self._failures.succeeded(log, self.what)
        self._failing = False
        self._saved = document
