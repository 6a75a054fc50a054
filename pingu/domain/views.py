"""The read side: a frozen view of what the core knows, and the pure functions that turn it
into what operators read (the status document behind `pingu status` and the metrics, the
systemd status line, the SIGUSR1 dump, and the log lines that tell of a decision).

Nothing here changes anything and nothing reads a clock: the shell passes the times in.
So the wording of every status and log line is testable without a running daemon.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from pingu.domain.commands import (
    Action,
    DeleteCapturedRoute,
    InstallOwnRoute,
    RemoveOwnRoute,
    RestoreCapturedRoute,
)
from pingu.domain.config import OnExit, WhenAllDown
from pingu.domain.health import Health
from pingu.domain.model import Lease, RoundResult, Route, TargetResult
from pingu.domain.reports import (
    LastResort,
    Report,
    RoundJudged,
    RouteCaptured,
    StateChanged,
    TableRepaired,
)
from pingu.domain.verdict import Verdict

STATUS_VERSION = 1


@dataclass(frozen=True)
class Counters:
    """What an uplink has cost and done since start-up."""

    rounds: int = 0
    echoes_sent: int = 0
    echoes_lost: int = 0
    echoes_abandoned: int = 0
    state_changes: int = 0
    reset_script_runs: int = 0
    route_changes: int = 0

    def plus(self, **more: int) -> Counters:
        return dataclasses.replace(
            self, **{key: getattr(self, key) + value for key, value in more.items()}
        )


@dataclass(frozen=True)
class LinkView:
    ifindex: int | None
    present: bool
    carrier: bool
    admin_up: bool
    point_to_point: bool
    address: str | None


@dataclass(frozen=True)
class RoundView:
    """The last round judged: when (monotonic), its verdict, and what it measured."""

    at: float
    verdict: Verdict
    result: RoundResult | None


@dataclass(frozen=True)
class UplinkView:
    """One uplink as the core knows it; times are monotonic."""

    name: str
    health: Health
    since: float
    why: str
    link: LinkView
    lease: Lease | None
    metric: int
    route: Route | None  # pingu's route for it, in the table
    last_round: RoundView | None
    round_running: bool
    next_round_at: float
    reset_script: str | None
    reset_script_at: float | None
    reset_script_running: bool
    counters: Counters

    @property
    def gateway(self) -> str | None:
        return self.lease.gateway if self.lease else None


@dataclass(frozen=True)
class CoreView:
    """Every uplink, in configuration order, and whether all of them are down."""

    proto: int
    on_exit: OnExit
    when_all_down: WhenAllDown
    all_down: bool
    last_resort: str | None
    uplinks: tuple[UplinkView, ...]

    def uplink(self, name: str) -> UplinkView:
        for uplink in self.uplinks:
            if uplink.name == name:
                return uplink
        raise KeyError(name)


@dataclass(frozen=True)
class Clocks:
    """The daemon's start, on both clocks: turns monotonic times into wall-clock ones."""

    started_mono: float
    started_wall: float

    def iso(self, monotonic: float | None) -> str | None:
        """A monotonic time as an ISO 8601 UTC timestamp (None stays None)."""
        if monotonic is None:
            return None
        when = self.started_wall + (monotonic - self.started_mono)
        return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")


# -- the status document (pingu status --json; the metrics read it too) ------------------


def status_document(
    view: CoreView, *, now: float, clocks: Clocks, version: str, pid: int
) -> dict[str, object]:
    """Everything `pingu status` shows, as stable JSON (see README: status)."""
    return {
        "status_version": STATUS_VERSION,
        "version": version,
        "pid": pid,
        "started_at": clocks.iso(clocks.started_mono),
        "uptime_s": round(now - clocks.started_mono, 3),
        "proto": view.proto,
        "on_exit": view.on_exit.value,
        "when_all_down": view.when_all_down.value,
        "all_down": view.all_down,
        "last_resort": view.last_resort,
        "uplinks": [_uplink_status(u, now, clocks) for u in view.uplinks],
    }


def _uplink_status(uplink: UplinkView, now: float, clocks: Clocks) -> dict[str, object]:
    last = uplink.last_round
    last_round: dict[str, object] | None = None
    if last is not None:
        result = last.result
        last_round = {
            "at": clocks.iso(last.at),
            "passed": last.verdict.passed,
            "reason": last.verdict.reason,
            "error": result.error if result else None,
            "targets": [target_status(t) for t in (result.targets if result else ())],
        }
    link = uplink.link
    return {
        "name": uplink.name,
        "state": uplink.health.value,
        "since": clocks.iso(uplink.since),
        "since_s": round(now - uplink.since, 3),
        "why": uplink.why,
        "link": {
            "present": link.present,
            "carrier": link.carrier,
            "admin_up": link.admin_up,
            "point_to_point": link.point_to_point,
            "address": link.address,
        },
        "gateway": uplink.gateway,
        "gateway_known": uplink.lease is not None,
        "metric": uplink.metric,
        "route_installed": uplink.route is not None,
        "last_round": last_round,
        "round_running": uplink.round_running,
        "next_round_in_s": None
        if uplink.round_running
        else round(max(0.0, uplink.next_round_at - now), 3),
        "reset_script": {
            "path": uplink.reset_script,
            "last_run": clocks.iso(uplink.reset_script_at),
            "running": uplink.reset_script_running,
        },
        "counters": dataclasses.asdict(uplink.counters),
    }


def target_status(target: TargetResult) -> dict[str, object]:
    delays = target.delays_ms
    return {
        "address": target.target,
        "sent": target.sent,
        "lost": target.lost,
        "abandoned": target.abandoned,
        "avg_ms": round(sum(delays) / len(delays), 3) if delays else None,
        "max_ms": round(max(delays), 3) if delays else None,
    }


# -- one-line summaries ------------------------------------------------------------------


def summary_line(view: CoreView) -> str:
    """What `systemctl status` shows: `2/3 uplinks routed: wan1, wan2; down: ppp0`."""
    routed = [u.name for u in view.uplinks if u.route is not None]
    down = [u.name for u in view.uplinks if not u.health.routed]
    line = f"{len(routed)}/{len(view.uplinks)} uplinks routed"
    if routed:
        line += f": {', '.join(routed)}"
    if down:
        line += f"; down: {', '.join(down)}"
    return line


def state_dump(view: CoreView) -> list[str]:
    """SIGUSR1: one line per uplink with its health, gateway and route (as py-pingu did)."""
    lines = []
    for uplink in view.uplinks:
        gateway = uplink.gateway if uplink.lease else "not learned"
        route = uplink.route.describe() if uplink.route else "none"
        last = uplink.last_round.verdict.reason if uplink.last_round else "none yet"
        lines.append(
            f"{uplink.name}: {uplink.health.value}, gateway {gateway}, route {route}, "
            f"last verdict: {last}"
        )
    return lines


# -- the log lines of a decision ---------------------------------------------------------


class Level(Enum):
    """How loud a line is; the shell maps these to its logger's levels."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Line:
    level: Level
    text: str


@dataclass(frozen=True)
class Narration:
    """What to log for a decision: a line per report (before its actions are carried out),
    and one per action once it is done. A state change tells of the route changes it made
    on its own line; those are then logged at debug level only."""

    reports: tuple[Line, ...]
    actions: tuple[Line | None, ...]  # aligned with the decision's actions


def narrate(actions: Sequence[Action], reports: Sequence[Report], view: CoreView) -> Narration:
    """The log lines of a decision (its actions and reports), read against the view the
    core had once it decided."""
    told: set[int] = set()
    lines = [_report_line(report, actions, view, told) for report in reports]
    done = [_action_line(action, index in told) for index, action in enumerate(actions)]
    return Narration(tuple(lines), tuple(done))


def _report_line(report: Report, actions: Sequence[Action], view: CoreView, told: set[int]) -> Line:
    match report:
        case RouteCaptured(uplink=uplink, route=route, gateway_changed=changed):
            what = "new gateway" if changed else "gateway"
            gateway = route.gateway or "none: point-to-point"
            return Line(Level.INFO, f"{uplink}: captured {route.describe()} ({what} {gateway})")
        case RoundJudged(uplink=uplink, passed=passed, reason=reason):
            outcome = "passed" if passed else "failed"
            level = Level.DEBUG if passed else Level.INFO
            return Line(level, f"{uplink}: round {outcome}: {reason}")
        case StateChanged(uplink=uplink, old=old, new=new, reason=reason):
            suffix = _what_it_did(report, actions, view, told)
            return Line(Level.WARNING, f"{uplink} {old.value} -> {new.value}: {reason}{suffix}")
        case LastResort(all_down=True, kept=None, reason=reason):
            return Line(Level.ERROR, f"ALL UPLINKS DOWN: {reason}")
        case LastResort(all_down=True, kept=kept, reason=reason):
            return Line(
                Level.ERROR,
                f"ALL UPLINKS DOWN: keeping {kept}'s route as a last resort "
                f"(when_all_down: keep_best): {reason}",
            )
        case LastResort():
            return Line(Level.WARNING, "uplinks back: no longer all down")
        case TableRepaired(uplink=uplink, what=what):
            return Line(Level.WARNING, f"{uplink or 'table'}: table repaired: {what}")


def _what_it_did(
    change: StateChanged, actions: Sequence[Action], view: CoreView, told: set[int]
) -> str:
    """` via GW; route metric M removed` (or `; route kept`, `; no route`)."""
    uplink = next((u for u in view.uplinks if u.name == change.uplink), None)
    gateway = uplink.gateway if uplink else None
    parts = [f" via {gateway}" if gateway else ""]
    for index, action in enumerate(actions):
        if isinstance(action, InstallOwnRoute | RemoveOwnRoute) and (
            action.route.ifname == change.uplink
        ):
            done = "installed" if isinstance(action, InstallOwnRoute) else "removed"
            parts.append(f"; route metric {action.route.metric} {done}")
            told.add(index)
    if len(parts) == 1:
        parts.append("; route kept" if uplink and uplink.route else "; no route")
    return "".join(parts)


def _action_line(action: Action, told: bool) -> Line | None:
    match action:
        case InstallOwnRoute(route=route):
            return Line(Level.DEBUG if told else Level.INFO, f"installed {route.describe()}")
        case RemoveOwnRoute(route=route):
            return Line(Level.DEBUG if told else Level.INFO, f"removed {route.describe()}")
        case DeleteCapturedRoute(route=route):
            return Line(Level.DEBUG, f"deleted captured {route.describe()}")
        case RestoreCapturedRoute(route=route):
            return Line(Level.INFO, f"restored {route.describe()}")
        case _:
            return None
