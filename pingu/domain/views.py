"""The read side: a frozen view of what the core knows, and the pure functions that turn it
into what operators read (the status document behind `pingu status` and the metrics, the
systemd status line, the SIGUSR1 dump, and the log lines that tell of a decision).

Nothing here changes anything and nothing reads a clock: the shell passes the times in.
So the wording of every status and log line is testable without a running daemon.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from pingu.domain.commands import (
    Action,
    DeleteCapturedRoute,
    EndFlows,
    InstallOwnRoute,
    RemoveOwnRoute,
    RestoreCapturedRoute,
)
from pingu.domain.config import OnExit, WhenAllDown
from pingu.domain.events import FlowsEnded
from pingu.domain.health import Health
from pingu.domain.history import EventRecord, RoundSample, route_changes, route_outcome
from pingu.domain.model import Family, Lease, RoundResult, Route, TargetResult
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
    conntrack_deleted: int = 0
    sockets_destroyed: int = 0

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
    address6: str | None = None


@dataclass(frozen=True)
class RoundView:
    """The last round judged: when (monotonic), its verdict, and what it measured."""

    at: float
    verdict: Verdict
    result: RoundResult | None


@dataclass(frozen=True)
class PathView:
    """One uplink in one family; times are monotonic."""

    family: Family
    health: Health
    since: float
    why: str
    lease: Lease | None
    route: Route | None  # pingu's route for it, in the table
    last_round: RoundView | None
    round_running: bool
    next_round_at: float
    counters: Counters
    rounds: tuple[RoundSample, ...] = ()  # the last rounds judged, oldest first
    events: tuple[EventRecord, ...] = ()  # the last state changes, oldest first

    @property
    def gateway(self) -> str | None:
        return self.lease.gateway if self.lease else None


@dataclass(frozen=True)
class UplinkView:
    """One uplink: its link, and a path per family it is managed in (IPv4 first). What the
    status document's version 1 says of an uplink is its first path's."""

    name: str
    link: LinkView
    metric: int
    reset_script: str | None
    reset_script_at: float | None
    reset_script_running: bool
    paths: tuple[PathView, ...]

    def path(self, family: Family) -> PathView:
        for path in self.paths:
            if path.family is family:
                return path
        raise KeyError(family)

    def label(self, family: Family) -> str:
        """`wan1` for an IPv4-only uplink; `wan1/ipv4`, `wan1/ipv6` for the others."""
        if tuple(p.family for p in self.paths) == (Family.IPV4,):
            return self.name
        return f"{self.name}/{family.label}"

    @property
    def first(self) -> PathView:
        return self.paths[0]

    @property
    def health(self) -> Health:
        return self.first.health

    @property
    def since(self) -> float:
        return self.first.since

    @property
    def why(self) -> str:
        return self.first.why

    @property
    def lease(self) -> Lease | None:
        return self.first.lease

    @property
    def gateway(self) -> str | None:
        return self.first.gateway

    @property
    def route(self) -> Route | None:
        return self.first.route

    @property
    def last_round(self) -> RoundView | None:
        return self.first.last_round

    @property
    def round_running(self) -> bool:
        return self.first.round_running

    @property
    def next_round_at(self) -> float:
        return self.first.next_round_at

    @property
    def counters(self) -> Counters:
        return self.first.counters


@dataclass(frozen=True)
class FamilyView:
    """Whether every uplink is down in one family, and which one `keep_best` kept."""

    family: Family
    all_down: bool
    last_resort: str | None


@dataclass(frozen=True)
class CoreView:
    """Every uplink, in configuration order, and each family's all-down state."""

    proto: int
    on_exit: OnExit
    when_all_down: WhenAllDown
    families: tuple[FamilyView, ...]
    uplinks: tuple[UplinkView, ...]
    last_event_id: int = 0  # of the latest state change (0: none yet)

    def uplink(self, name: str) -> UplinkView:
        for uplink in self.uplinks:
            if uplink.name == name:
                return uplink
        raise KeyError(name)

    def family(self, family: Family) -> FamilyView:
        for view in self.families:
            if view.family is family:
                return view
        return FamilyView(family, False, None)

    @property
    def all_down(self) -> bool:
        """Version 1's all-down: the first family's (IPv4 when there is any)."""
        return self.families[0].all_down if self.families else False

    @property
    def last_resort(self) -> str | None:
        return self.families[0].last_resort if self.families else None


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
        "families": {
            f.family.label: {"all_down": f.all_down, "last_resort": f.last_resort}
            for f in view.families
        },
        "uplinks": [_uplink_status(u, now, clocks) for u in view.uplinks],
        "last_event_id": view.last_event_id,
        "events": _events_status(view, clocks),
    }


def _events_status(view: CoreView, clocks: Clocks) -> list[dict[str, object]]:
    """Every path's recent state changes, in the order they happened (by id)."""
    records = [(u.name, p.family, e) for u in view.uplinks for p in u.paths for e in p.events]
    return [
        {
            "id": event.id,
            "at": clocks.iso(event.at),
            "uplink": name,
            "family": family.label,
            "from": event.old.value,
            "to": event.new.value,
            "why": event.reason,
            "changed": list(event.changed),
        }
        for name, family, event in sorted(records, key=lambda r: r[2].id)
    ]


def _rounds_status(path: PathView, clocks: Clocks) -> list[dict[str, object]]:
    return [
        {
            "at": clocks.iso(sample.at),
            "passed": sample.passed,
            "sent": sample.sent,
            "received": sample.received,
            "lost": sample.lost,
            "delay_ms": None if sample.delay_ms is None else round(sample.delay_ms, 3),
        }
        for sample in path.rounds
    ]


def _uplink_status(uplink: UplinkView, now: float, clocks: Clocks) -> dict[str, object]:
    link = uplink.link
    return {
        "name": uplink.name,
        **_path_status(uplink.first, now, clocks),
        "link": {
            "present": link.present,
            "carrier": link.carrier,
            "admin_up": link.admin_up,
            "point_to_point": link.point_to_point,
            "address": link.address,
            "address6": link.address6,
        },
        "metric": uplink.metric,
        "reset_script": {
            "path": uplink.reset_script,
            "last_run": clocks.iso(uplink.reset_script_at),
            "running": uplink.reset_script_running,
        },
        "families": {
            p.family.label: {**_path_status(p, now, clocks), "rounds": _rounds_status(p, clocks)}
            for p in uplink.paths
        },
    }


def _path_status(path: PathView, now: float, clocks: Clocks) -> dict[str, object]:
    """What the status document says of one path (version 1 said it of the uplink)."""
    last = path.last_round
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
    return {
        "family": path.family.label,
        "state": path.health.value,
        "since": clocks.iso(path.since),
        "since_s": round(now - path.since, 3),
        "why": path.why,
        "gateway": path.gateway,
        "gateway_known": path.lease is not None,
        "route_installed": path.route is not None,
        "last_round": last_round,
        "round_running": path.round_running,
        "next_round_in_s": None
        if path.round_running
        else round(max(0.0, path.next_round_at - now), 3),
        "counters": dataclasses.asdict(path.counters),
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
    """What `systemctl status` shows: `2/3 uplinks routed: wan1, wan2; down: ppp0` (a
    dual-stack uplink counts as its paths: `wan1/ipv4, wan1/ipv6`)."""
    paths = [(u, p) for u in view.uplinks for p in u.paths]
    routed = [u.label(p.family) for u, p in paths if p.route is not None]
    down = [u.label(p.family) for u, p in paths if not p.health.routed]
    line = f"{len(routed)}/{len(paths)} uplinks routed"
    if routed:
        line += f": {', '.join(routed)}"
    if down:
        line += f"; down: {', '.join(down)}"
    return line


def state_dump(view: CoreView) -> list[str]:
    """SIGUSR1: one line per uplink with its health, gateway and route (as py-pingu did)."""
    lines = []
    for uplink in view.uplinks:
        for path in uplink.paths:
            gateway = path.gateway if path.lease else "not learned"
            route = path.route.describe() if path.route else "none"
            last = path.last_round.verdict.reason if path.last_round else "none yet"
            lines.append(
                f"{uplink.label(path.family)}: {path.health.value}, gateway {gateway}, "
                f"route {route}, last verdict: {last}"
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


def label(view: CoreView, uplink: str, family: Family) -> str:
    """How logs name an uplink's path: `wan1` (IPv4 only), `wan1/ipv6` (dual-stack)."""
    try:
        return view.uplink(uplink).label(family)
    except KeyError:
        return uplink if family is Family.IPV4 else f"{uplink}/{family.label}"


def _families_word(view: CoreView, family: Family) -> str:
    """` IPv6` in the all-down lines when the box is managed in more than IPv4."""
    if tuple(f.family for f in view.families) == (Family.IPV4,):
        return ""
    return " " + family.label.replace("ipv", "IPv")


def _report_line(report: Report, actions: Sequence[Action], view: CoreView, told: set[int]) -> Line:
    match report:
        case RouteCaptured(uplink=uplink, route=route, gateway_changed=changed):
            what = "new gateway" if changed else "gateway"
            gateway = route.gateway or "none: point-to-point"
            name = label(view, uplink, route.family)
            return Line(Level.INFO, f"{name}: captured {route.describe()} ({what} {gateway})")
        case RoundJudged(uplink=uplink, passed=passed, reason=reason, family=family):
            outcome = "passed" if passed else "failed"
            level = Level.DEBUG if passed else Level.INFO
            return Line(level, f"{label(view, uplink, family)}: round {outcome}: {reason}")
        case StateChanged(uplink=uplink, old=old, new=new, reason=reason, family=family):
            suffix = _what_it_did(report, actions, view, told)
            if report.event_id:
                suffix += f" (event {report.event_id})"
            name = label(view, uplink, family)
            return Line(Level.WARNING, f"{name} {old.value} -> {new.value}: {reason}{suffix}")
        case LastResort(all_down=True, kept=None, reason=reason, family=family):
            return Line(Level.ERROR, f"ALL UPLINKS DOWN{_families_word(view, family)}: {reason}")
        case LastResort(all_down=True, kept=kept, reason=reason, family=family):
            return Line(
                Level.ERROR,
                f"ALL UPLINKS DOWN{_families_word(view, family)}: keeping {kept}'s route as a "
                f"last resort (when_all_down: keep_best): {reason}",
            )
        case LastResort(family=family):
            return Line(
                Level.WARNING, f"uplinks back{_families_word(view, family)}: no longer all down"
            )
        case TableRepaired(uplink=uplink, what=what, family=family):
            name = label(view, uplink, family) if uplink else "table"
            return Line(Level.WARNING, f"{name}: table repaired: {what}")


def _what_it_did(
    change: StateChanged, actions: Sequence[Action], view: CoreView, told: set[int]
) -> str:
    """` via GW; route metric M removed` (or `; route kept`, `; no route`)."""
    uplink = next((u for u in view.uplinks if u.name == change.uplink), None)
    path = next((p for p in uplink.paths if p.family is change.family), None) if uplink else None
    gateway = path.gateway if path else None
    changes = route_changes(change.uplink, change.family, actions)
    told.update(index for index, _ in changes)
    outcome = route_outcome([text for _, text in changes], bool(path and path.route))
    return (f" via {gateway}" if gateway else "") + "".join(f"; {text}" for text in outcome)


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


def flows_line(request: EndFlows, done: FlowsEnded) -> Line:
    """`wan1: traffic left it for wan2: 12 conntrack entries deleted, 3 TCP connections
    destroyed (of 100.64.1.2)`; INFO when something was ended, else DEBUG."""
    name = (
        request.uplink
        if request.family is Family.IPV4
        else f"{request.uplink}/{request.family.label}"
    )
    where = f"for {request.now_via}" if request.now_via else "and no route is left"
    waited = f" after a quiet period of {request.waited_s:g} s" if request.waited_s else ""
    parts = []
    if request.conntrack:
        parts.append(
            f"{done.conntrack} conntrack entr{'y' if done.conntrack == 1 else 'ies'} deleted"
        )
    if request.sockets:
        parts.append(f"{done.sockets} TCP connection{'' if done.sockets == 1 else 's'} destroyed")
    of = ", ".join(request.addresses) or "no address known"
    text = f"{name}: traffic left it {where}{waited}: {', '.join(parts)} (of {of})"
    if done.error:
        return Line(Level.WARNING, f"{text}; failed: {done.error}")
    level = Level.INFO if done.conntrack or done.sockets else Level.DEBUG
    return Line(level, text)


# -- the sparkline of recent rounds -------------------------------------------------------

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_PARTIAL = "▒"  # some echoes of the round were lost, some answered
SPARK_LOST = "\N{MULTIPLICATION SIGN}"  # no reply at all (or nothing could be sent: no carrier)

Mark = tuple[float | None, int, int]
"""One round for the sparkline: (average delay in ms or None, echoes answered, lost)."""


def marks_of(rounds: Iterable[RoundSample]) -> list[Mark]:
    return [(r.delay_ms, r.received, r.lost) for r in rounds]


def spark_scale(rounds: Sequence[Mark]) -> float | None:
    """The delay a full block stands for: the largest of the rounds drawn as blocks."""
    delays = [d for d, received, lost in rounds if received and not lost and d is not None]
    return max(delays) if delays else None


def sparkline(rounds: Sequence[Mark]) -> str:
    """One character per round, oldest first: a block whose height is the round's average
    delay (in eighths of the largest one shown, at least one eighth), `▒` for a round that
    lost some echoes, a multiplication sign for a round without any reply."""
    top = spark_scale(rounds)
    chars = []
    for delay, received, lost in rounds:
        if not received:
            chars.append(SPARK_LOST)
        elif lost:
            chars.append(SPARK_PARTIAL)
        else:
            eighths = 1 if not top or delay is None else math.ceil(delay / top * 8)
            chars.append(SPARK_BLOCKS[min(8, max(1, eighths)) - 1])
    return "".join(chars)
