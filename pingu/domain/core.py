"""The decider: reacts to one event at a time with a Decision: what to do (actions) and
what to tell (reports). Its state is its own; the read side sees it through `view()`.

Each uplink is managed in each family it has probe targets of (IPv4, IPv6), each family on
its own: a *path* (an uplink in one family) has its own gateway, rounds, verdicts, health
and route. What the families share is the uplink's link (its carrier takes both down) and
its reset script (one script resets one line, whichever family found it faulty).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

from pingu.domain.commands import (
    Action,
    DeleteCapturedRoute,
    EndFlows,
    InstallOwnRoute,
    RemoveOwnRoute,
    RestoreCapturedRoute,
    RouteAction,
    RunScript,
    ScriptKind,
    StartProbe,
)
from pingu.domain.config import Config, InitialState, UplinkConfig, WhenAllDown, script_argv
from pingu.domain.events import (
    Event,
    FlowsEnded,
    LinkChanged,
    LinkVanished,
    ProbeFinished,
    RouteAppeared,
    RouteInstalled,
    RouterAdvertised,
    RouteRefused,
    RouteVanished,
    ScriptFinished,
    TableSnapshot,
    TimerFired,
)
from pingu.domain.health import Health, HealthState, Signal, step
from pingu.domain.history import EventRecord, PathHistory, RoundSample, route_changes, route_outcome
from pingu.domain.model import MAIN_TABLE, Family, Lease, RoundResult, Route
from pingu.domain.reports import (
    LastResort,
    Report,
    RoundJudged,
    RouteCaptured,
    StateChanged,
    TableRepaired,
)
from pingu.domain.routes import own_route, route_diff
from pingu.domain.state import SavedPath, SavedUplink
from pingu.domain.verdict import Verdict, judge
from pingu.domain.views import (
    CoreView,
    Counters,
    FamilyView,
    LinkView,
    PathView,
    RoundView,
    UplinkView,
)

Output: TypeAlias = Action | Report


@dataclass(frozen=True)
class Decision:
    """What the core decided about one event: the actions to carry out, in order, and the
    reports that tell of it (logged, never carried out)."""

    actions: tuple[Action, ...] = ()
    reports: tuple[Report, ...] = ()

    @classmethod
    def of(cls, outputs: list[Output]) -> Decision:
        actions = [o for o in outputs if not isinstance(o, Report)]
        reports = [o for o in outputs if isinstance(o, Report)]
        return cls(tuple(actions), tuple(reports))


@dataclass
class Link:
    """The interface of one configured uplink, as the families share it; with the state of
    the uplink's reset script (one line, one script)."""

    config: UplinkConfig
    ifindex: int | None = None
    carrier: bool = False
    admin_up: bool = False
    point_to_point: bool = False
    addresses: dict[Family, str | None] = field(default_factory=dict)
    present_since: float | None = None
    script_running: bool = False
    last_script_at: float | None = None
    paths: dict[Family, Path] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def usable(self) -> bool:
        """The link exists, is administratively up and has carrier."""
        return self.ifindex is not None and self.carrier and self.admin_up


@dataclass
class Path:
    """One uplink in one family; read-only outside this module.

    Routes in the table that concern it: `installed` is pingu's route serving it (confirmed
    by the shell or seen in the table); `stale` are pingu's routes that must go (an old
    gateway, an old metric, a duplicate); `lingering` are captured foreign routes still in
    the table, deleted once pingu's replacement is in (or none is wanted).
    """

    link: Link
    family: Family
    standing: HealthState
    lease: Lease | None = None
    installed: Route | None = None
    stale: list[Route] = field(default_factory=list)
    lingering: list[Route] = field(default_factory=list)
    probing: bool = False
    round_id: int = 0
    next_round_at: float = 0.0
    last_verdict: Verdict | None = None
    last_result: RoundResult | None = None
    changed_at: float = 0.0
    change_reason: str = "start-up"
    last_round_at: float | None = None
    refused: Route | None = None  # refused by the kernel: not retried before the next verdict
    counters: Counters = field(default_factory=Counters)
    history: PathHistory = field(default_factory=PathHistory)

    @property
    def config(self) -> UplinkConfig:
        return self.link.config

    @property
    def name(self) -> str:
        return self.link.config.name

    @property
    def ifindex(self) -> int | None:
        return self.link.ifindex

    @property
    def address(self) -> str | None:
        """The uplink's own address in this family (IPv6: global, neither tentative nor
        deprecated), the source of its echoes."""
        return self.link.addresses.get(self.family)

    @property
    def usable(self) -> bool:
        """The link is usable, and (IPv6) the uplink has an address to probe from."""
        return self.link.usable and (self.family is Family.IPV4 or self.address is not None)


class Core:
    """The pure core of pingu: `handle(event, now)` returns a Decision, never performs it.

    Route changes are made before they break (DESIGN.md): routes to add go out at once; a
    route that must go (pingu's old one, a captured one) waits until every route the core
    asked for in the meantime is confirmed in the table (`RouteInstalled`) or refused
    (`RouteRefused`), which the shell reports right after carrying the actions out. Scripts
    wait with them: a failed uplink's route is gone before its reset script starts.
    """

    def __init__(self, config: Config, now: float) -> None:
        self.config = config
        self._links = {u.name: self._new_link(u, now) for u in config.uplinks}
        self._by_index: dict[int, str] = {}
        self._kept: dict[Family, str | None] = {}  # kept as a last resort (keep_best)
        self._reported: dict[Family, tuple[bool, str | None]] = {}
        self._pending: set[Route] = set()  # asked for, neither confirmed nor refused yet
        self._orphans: list[Route] = []  # pingu's routes that belong to no uplink: to remove
        self._held: list[RunScript] = []  # scripts waiting for the route changes before them
        # Per family, the uplink whose route traffic takes (pingu's route of lowest metric
        # in the table), and the flows to end of uplinks traffic left, once their quiet
        # period is over.
        self._serving: dict[Family, str | None] = {}
        self._flow_waits: dict[tuple[str, Family], tuple[float, EndFlows]] = {}
        # Paths a reload added, whose routes no read of the table has shown pingu yet: what
        # the next one finds was there all along, not added behind pingu's back.
        self._unread: set[tuple[str, Family]] = set()
        # State changes are numbered from 1, all paths together: the number ties a change's
        # log line, its scripts (PINGU_EVENT_ID) and its record in the status history.
        self._last_event_id = 0

    def _new_link(self, config: UplinkConfig, now: float) -> Link:
        link = Link(config)
        for family in config.families:
            link.paths[family] = self._new_path(link, family, now)
        return link

    def _new_path(self, link: Link, family: Family, now: float) -> Path:
        start = Health.UP if self.config.initial_state is InitialState.UP else Health.DOWN
        return Path(link, family, HealthState(start), next_round_at=now, changed_at=now)

    def _paths(self) -> Iterator[Path]:
        """Every path, in the configuration's order (IPv4 first within an uplink)."""
        for link in self._links.values():
            yield from link.paths.values()

    # -- the one entry point -------------------------------------------------------------

    def handle(self, event: Event, now: float) -> Decision:
        """Apply `event` at monotonic time `now`; what must be done, in order, and told."""
        outputs: list[Output] = []
        match event:
            case RouteAppeared(route=route, replaced=replaced):
                if replaced:
                    outputs += self._displaced_by(route)
                outputs += self._route_appeared(route, now)
            case RouteVanished(route=route):
                self._route_vanished(route)
            case LinkChanged():
                outputs += self._link_changed(event, now)
            case LinkVanished(ifindex=ifindex, ifname=ifname):
                outputs += self._link_vanished(ifindex, ifname, now)
            case ProbeFinished(uplink=name, result=result, round_id=round_id, family=family):
                outputs += self._probe_finished(name, family, result, round_id, now)
            case ScriptFinished(uplink=name, kind=kind):
                if name in self._links and kind is ScriptKind.RESET:
                    self._links[name].script_running = False
            case RouteInstalled(route=route):
                self._route_installed(route)
            case RouteRefused(route=route):
                self._route_refused(route)
            case TableSnapshot():
                outputs += self._snapshot(event, now)
            case RouterAdvertised(ifindex=ifindex, router=router, lifetime_s=lifetime):
                outputs += self._router_advertised(ifindex, router, lifetime, now)
            case FlowsEnded():
                self._flows_ended(event)
            case TimerFired():
                pass
        outputs += self._expire_leases(now)
        rounds = self._start_due_rounds(now)  # may judge a round at once (no carrier)
        outputs += self._settle()
        outputs += self._report_last_resort()
        return self._decided(outputs + rounds + self._traffic_moves(now))

    def reconfigure(self, config: Config, now: float) -> Decision:
        """Apply a reloaded configuration (same proto): drop, add and update uplinks, and
        the families each is managed in.

        A dropped uplink (or family) is left as pingu found it (captured routes back,
        pingu's removed); an added one knows nothing until the shell feeds it a fresh
        snapshot of the table.
        """
        outputs: list[Output] = []
        for name in [n for n in self._links if config.uplink(n) is None]:
            for path in self._links.pop(name).paths.values():
                outputs += self._release(path, at_stop=False, now=now)
        self.config = config
        for settings in config.uplinks:
            link = self._links.get(settings.name)
            if link is None:
                self._links[settings.name] = self._new_link(settings, now)
                self._unread.update((settings.name, f) for f in settings.families)
                continue
            link.config = settings
            for family in [f for f in link.paths if f not in settings.families]:
                outputs += self._release(link.paths.pop(family), at_stop=False, now=now)
            for family in settings.families:
                kept = link.paths.get(family)
                if kept is None:
                    link.paths[family] = self._new_path(link, family, now)
                    self._unread.add((settings.name, family))
                else:
                    kept.next_round_at = min(kept.next_round_at, now + settings.period)
            link.paths = {f: link.paths[f] for f in settings.families}
        # The file's order is the order of the new configuration.
        self._links = {u.name: self._links[u.name] for u in config.uplinks}
        outputs += self._settle()
        outputs += self._report_last_resort()
        return self._decided(outputs + self._traffic_moves(now))

    def _decided(self, outputs: list[Output]) -> Decision:
        """The outputs as a Decision, once the paths' counters have counted them and the
        history has recorded what each state change made pingu do."""
        for output in outputs:
            self._count(output)
        decision = Decision.of(outputs)
        for report in decision.reports:
            if isinstance(report, StateChanged):
                self._record_changes(report, decision.actions)
        return decision

    def _record_changes(self, change: StateChanged, actions: tuple[Action, ...]) -> None:
        """What a state change made pingu do, in its record: the route changes of its
        decision (those its log line tells of) and the scripts run for it."""
        path = self._path(change.uplink, change.family)
        if path is None:
            return
        routes = [text for _, text in route_changes(change.uplink, change.family, actions)]
        changed = list(route_outcome(routes, path.installed is not None))
        scripts = [a for a in (*actions, *self._held) if isinstance(a, RunScript)]
        changed += [
            f"{script.kind.value}_script run"
            for script in scripts
            if script.event_id == change.event_id and script.uplink == change.uplink
        ]
        path.history.tell_changes(change.event_id, changed)

    def _count(self, output: Output) -> None:
        path: Path | None = None
        match output:
            case StartProbe(uplink=name, family=family):
                path, key = self._path(name, family), "rounds"
            case StateChanged(uplink=name, family=family):
                path, key = self._path(name, family), "state_changes"
            case RunScript(uplink=name, kind=ScriptKind.RESET, family=family):
                path, key = self._path(name, family), "reset_script_runs"
            case InstallOwnRoute(route=route) | RemoveOwnRoute(route=route):
                path, key = self._path_of(route), "route_changes"
            case _:
                return
        if path is not None:
            path.counters = path.counters.plus(**{key: 1})

    # -- traffic that follows the route ---------------------------------------------------

    def _serving_now(self, family: Family, before: str | None) -> str | None:
        """The uplink whose route traffic of `family` takes: pingu's route of the lowest
        metric in the table (confirmed, or on its way out). A route being put back (someone
        deleted it) keeps its uplink serving; a new one serves once it is confirmed."""
        best: tuple[int, str] | None = None
        for path in self._paths():
            if path.family is not family:
                continue
            routes = [*([path.installed] if path.installed else []), *path.stale]
            if path.name == before:
                routes += [r for r in self._pending if self._path_of(r) is path]
            for route in routes:
                if route.proto == self.config.proto and (best is None or route.metric < best[0]):
                    best = (route.metric, path.name)
        return None if best is None else best[1]

    def _traffic_moves(self, now: float) -> list[Output]:
        """When traffic of a family leaves an uplink (its route went, or a better one came
        back), what that broke on the uplink left is ended: its NATed flows and the box's
        connections from its address keep that address on the new way out, where nothing
        answers. After `flow_quiet_period`, unless traffic is back on that uplink by then;
        on the uplink's own route change, after it (this decision's last action)."""
        outputs: list[Output] = []
        for family in Family:
            before = self._serving.get(family)
            now_serving = self._serving_now(family, before)
            self._serving[family] = now_serving
            if now_serving is not None:
                self._flow_waits.pop((now_serving, family), None)  # back before its time
            if before is None or before == now_serving:
                continue
            path = self._path(before, family)
            if path is None or not (path.config.flush_conntrack or path.config.kill_sockets):
                continue
            address = path.link.addresses.get(family)
            quiet = path.config.flow_quiet_period
            end = EndFlows(
                before,
                family,
                path.ifindex,
                (address,) if address else (),
                path.config.flush_conntrack,
                path.config.kill_sockets,
                now_serving,
                quiet,
            )
            self._flow_waits[(before, family)] = (now + quiet, end)
        for key, (due, end) in list(self._flow_waits.items()):
            if now >= due:
                del self._flow_waits[key]
                outputs.append(dataclasses.replace(end, now_via=self._serving.get(end.family)))
        return outputs

    def _flows_ended(self, event: FlowsEnded) -> None:
        path = self._path(event.uplink, event.family)
        if path is not None:
            path.counters = path.counters.plus(
                conntrack_deleted=event.conntrack, sockets_destroyed=event.sockets
            )

    def _path(self, name: str, family: Family) -> Path | None:
        link = self._links.get(name)
        return link.paths.get(family) if link else None

    # -- the read side's view ----------------------------------------------------------

    def view(self) -> CoreView:
        """A frozen copy of what the core knows, for status, metrics and logs."""
        families = tuple(
            FamilyView(family, *self._reported.get(family, (False, None)))
            for family in Family
            if any(family in link.paths for link in self._links.values())
        )
        return CoreView(
            proto=self.config.proto,
            on_exit=self.config.on_exit,
            when_all_down=self.config.when_all_down,
            families=families,
            uplinks=tuple(self._uplink_view(link) for link in self._links.values()),
            last_event_id=self._last_event_id,
        )

    @staticmethod
    def _uplink_view(link: Link) -> UplinkView:
        return UplinkView(
            name=link.name,
            link=LinkView(
                ifindex=link.ifindex,
                present=link.ifindex is not None,
                carrier=link.carrier,
                admin_up=link.admin_up,
                point_to_point=link.point_to_point,
                address=link.addresses.get(Family.IPV4),
                address6=link.addresses.get(Family.IPV6),
            ),
            metric=link.config.metric,
            reset_script=link.config.reset_script,
            reset_script_at=link.last_script_at,
            reset_script_running=link.script_running,
            paths=tuple(Core._path_view(path) for path in link.paths.values()),
        )

    @staticmethod
    def _path_view(path: Path) -> PathView:
        last = None
        if path.last_round_at is not None and path.last_verdict is not None:
            last = RoundView(path.last_round_at, path.last_verdict, path.last_result)
        return PathView(
            family=path.family,
            health=path.standing.health,
            since=path.changed_at,
            why=path.change_reason,
            lease=path.lease,
            route=path.installed,
            last_round=last,
            round_running=path.probing,
            next_round_at=path.next_round_at,
            counters=path.counters,
            rounds=path.history.rounds,
            events=path.history.events,
        )

    # -- state that survives a restart --------------------------------------------------

    def saved_state(self, now: float) -> dict[str, SavedUplink]:
        """What a restart needs: leases (a router's lifetime as the seconds it has left at
        `now`), whether routed, seconds since the last reset."""
        saved: dict[str, SavedUplink] = {}
        for link in self._links.values():
            ago = None if link.last_script_at is None else now - link.last_script_at
            paths = {
                family: SavedPath(
                    _lifetime_left(path.lease, now),
                    Health.UP if path.standing.health.routed else Health.DOWN,
                )
                for family, path in link.paths.items()
            }
            saved[link.name] = SavedUplink.of(paths, ago)
        return saved

    def adopt_state(self, saved: dict[str, SavedUplink], now: float) -> list[str]:
        """Take what an earlier run saved, before the first snapshot; returns what was taken."""
        taken: list[str] = []
        for name, entry in saved.items():
            link = self._links.get(name)
            if link is None:
                continue
            for family, path in link.paths.items():
                taken += self._adopt_path(path, entry.paths().get(family), now)
            if entry.reset_script_ago is not None:
                link.last_script_at = now - entry.reset_script_ago
                taken.append(f"{name}: reset script ran {entry.reset_script_ago:.0f} s ago")
        return taken

    def _adopt_path(self, path: Path, saved: SavedPath | None, now: float) -> list[str]:
        if saved is None:
            return []
        taken: list[str] = []
        label = _label(path)
        lease = saved.lease
        if lease is not None:
            # pingu's own routes are never put back as if they were captured.
            captured = tuple(r for r in lease.captured if r.proto != self.config.proto)
            until = None if lease.valid_until is None else now + lease.valid_until
            path.lease = Lease(lease.gateway, captured, lease.attributes, until)
            taken.append(f"{label}: gateway {lease.gateway or 'none (point-to-point)'}")
        if saved.health is not None:
            path.standing = HealthState(saved.health)
            taken.append(f"{label}: {saved.health.value}")
        return taken

    def adopt_gateways(self, gateways: dict[str, str | None], now: float) -> list[str]:
        """Take py-pingu's gateways file (IPv4) for uplinks that still know no gateway
        (after the state file and the first snapshot). Such a gateway may be stale (another
        boot, an old lease): its route waits until a round through it passes."""
        taken: list[str] = []
        for name, gateway in gateways.items():
            path = self._path(name, Family.IPV4)
            if path is None or path.lease is not None:
                continue
            path.lease = Lease(gateway)
            path.standing = HealthState(Health.DOWN)
            self._round_now(path, now)
            taken.append(f"{name}: gateway {gateway or 'none (point-to-point)'}")
        return taken

    def stop(self, now: float) -> list[RouteAction]:
        """Leave the table as if pingu had never run: captured routes back, pingu's gone.

        The shell carries these out in order without reporting back: each captured route
        is put back before pingu's route of the same uplink is removed."""
        outputs: list[RouteAction] = []
        for path in self._paths():
            outputs += self._release(path, at_stop=True, now=now)
        outputs += [RemoveOwnRoute(route) for route in self._orphans]
        self._orphans = []
        return outputs

    def _release(self, path: Path, *, at_stop: bool, now: float) -> list[RouteAction]:
        """Put the path's captured routes back, whole, and remove pingu's (once the captured
        ones are in, unless pingu is stopping: then the order is enough). A route that
        ends by itself goes back with the lifetime it has left (none left: not at all)."""
        outputs: list[RouteAction] = []
        lease = path.lease
        restore: list[Route] = []
        if lease is not None and path.ifindex is not None:
            in_table = set(path.lingering)
            left = None if lease.valid_until is None else lease.valid_until - now
            restore = [
                dataclasses.replace(
                    route,
                    ifindex=path.ifindex,
                    ifname=path.name,
                    expires=None if route.expires is None or left is None else left,
                )
                for route in lease.captured
            ]
            restore = [
                route
                for route in restore
                if route not in in_table and (route.expires is None or route.expires > 0)
            ]
        outputs += [RestoreCapturedRoute(route) for route in restore]
        mine = [*([path.installed] if path.installed else []), *path.stale]
        path.installed, path.stale, path.lingering = None, [], []
        if at_stop:
            outputs += [RemoveOwnRoute(route) for route in mine]
        else:
            self._pending.update(restore)
            self._orphans += mine
        return outputs

    def desired_routes(self) -> list[Route]:
        """pingu's routes that should be in the table now, one per path that is wanted."""
        return [r for p in self._paths() if (r := self._desired(p)) is not None]

    def next_deadline(self) -> float | None:
        """When the core next needs a `TimerFired` (a round due, a lease ending), if ever."""
        due = [p.next_round_at for p in self._paths() if not p.probing]
        due += [p.lease.valid_until for p in self._paths() if p.lease and p.lease.valid_until]
        due += [when for when, _ in self._flow_waits.values()]
        return min(due) if due else None

    # -- routes --------------------------------------------------------------------------

    def _path_of(self, route: Route) -> Path | None:
        name = route.ifname or self._by_index.get(route.ifindex)
        link = self._links.get(name) if name is not None else None
        if link is None or link.ifindex not in (None, route.ifindex):
            return None  # not configured, or a route of the interface's previous incarnation
        return link.paths.get(route.family)

    def _route_appeared(self, route: Route, now: float) -> list[Output]:
        if route.table != MAIN_TABLE or not route.is_default:
            return []
        path = self._path_of(route)
        if route.proto == self.config.proto:
            self._own_route_seen(path, route, now)
            return []
        if path is None:
            return []  # not an uplink's, or a family the uplink is not managed in
        return self._capture(path, route, now)

    def _own_route_seen(self, path: Path | None, route: Route, now: float) -> None:
        """A route with pingu's proto: adopt it if it is the path's, else it must go."""
        if route in self._pending or route in self._orphans:
            return  # one the core asked for: its confirmation tells the rest
        if path is None or route.metric != path.config.metric:
            self._orphans.append(route)
            return
        if route == path.installed or route in path.stale:
            return
        if path.link.ifindex is None:
            path.link.ifindex = route.ifindex
            self._by_index[route.ifindex] = path.name
        if path.lease is None:
            # Left by an earlier run of pingu: trust its gateway, and re-validate it now.
            path.lease = Lease(route.gateway, (), route.attributes)
            self._round_now(path, now)
        if path.installed is None and route == self._desired(path):
            path.installed = route
        else:
            path.stale.append(route)  # a duplicate, or not wanted now

    def _capture(self, path: Path, route: Route, now: float) -> list[Output]:
        """Learn the gateway of a foreign default route; it goes once pingu's is in.

        A second IPv6 router on the link does not take the gateway over while the router
        in use keeps advertising (its route is remembered, to be put back at a stop)."""
        old = path.lease
        alive = (
            old is not None
            and route.family is Family.IPV6
            and old.gateway != route.gateway
            and old.valid_until is not None
            and old.valid_until > now
        )
        if alive:
            assert old is not None
            path.lease = old.beside(route)
        else:
            path.lease = (old or Lease(None)).with_capture(route, now)
        link = path.link
        if link.ifindex != route.ifindex:
            self._forget_index(link)
            link.ifindex = route.ifindex
            self._by_index[route.ifindex] = link.name
        if route not in path.lingering:
            path.lingering.append(route)
        changed = not alive and (old is None or old.gateway != route.gateway)
        if changed:
            self._round_now(path, now)
        return [RouteCaptured(path.name, route, changed)]

    def _displaced_by(self, route: Route) -> list[Output]:
        """`route` replaced whatever route held its slot, without any RTM_DELROUTE: if that
        was pingu's, pingu's is gone (and goes back in beside it, by the next settle)."""
        if route.table != MAIN_TABLE or not route.is_default:
            return []
        outputs: list[Output] = []
        for path in self._paths():
            mine = path.installed
            if mine is not None and mine.slot == route.slot and mine != route:
                path.installed = None
                outputs.append(
                    TableRepaired(
                        path.name,
                        f"pingu's {mine.describe()} was replaced by {route.describe()}; "
                        "putting it back",
                        path.family,
                    )
                )
            path.stale = [r for r in path.stale if r.slot != route.slot or r == route]
            path.lingering = [r for r in path.lingering if r.slot != route.slot or r == route]
        self._orphans = [r for r in self._orphans if r.slot != route.slot or r == route]
        return outputs

    def _route_vanished(self, route: Route) -> None:
        if route.table != MAIN_TABLE or not route.is_default:
            return
        path = self._path_of(route)
        self._orphans = [r for r in self._orphans if r != route]
        if path is None:
            return
        if path.installed == route:
            path.installed = None  # deleted by someone else: the next settle puts it back
        path.stale = [r for r in path.stale if r != route]
        path.lingering = [r for r in path.lingering if r != route]

    def _route_installed(self, route: Route) -> None:
        """The shell confirms that `route`, which the core asked for, is in the table."""
        self._pending.discard(route)
        if route.proto != self.config.proto:
            return  # a captured route put back
        path = self._path_of(route)
        if path is None:
            self._orphans.append(route)
        elif route == self._desired(path):
            old = path.installed
            if old is not None and old != route and not _one_kernel_route(old, route):
                path.stale.append(old)
            path.installed = route
        elif route != path.installed and route not in path.stale:
            path.stale.append(route)  # no longer wanted by the time it was in

    def _route_refused(self, route: Route) -> None:
        """Not in the table after all: the next verdict tries again; meanwhile the captured
        route it would have replaced stays."""
        self._pending.discard(route)
        path = self._path_of(route)
        if path is not None and route.proto == self.config.proto:
            path.refused = route

    def _desired(self, path: Path) -> Route | None:
        if not (path.usable and path.lease is not None):
            return None
        if not path.standing.health.routed and self._last_resort(path.family) != path.name:
            return None
        assert path.ifindex is not None
        return own_route(
            path.ifindex,
            path.name,
            path.lease.gateway,
            path.config.metric,
            self.config.proto,
            attributes=path.lease.attributes,
            family=path.family,
        )

    def _settle(self) -> list[Output]:
        """Every path's routes as they should be: what must be added now; what must go
        (and the scripts held back) once nothing asked for is awaiting confirmation.

        Each path's own route follows `route_diff` (the new route first, the old one
        after): the new one is asked for now; the old one stays until the new one is
        confirmed (`_route_installed` retires it), or goes at once when no route is wanted
        or the one wanted was refused."""
        makes: list[Output] = []
        for path in self._paths():
            desired = self._desired(path)
            target = None if desired == path.refused else desired
            for change in route_diff(path.installed, target):
                if isinstance(change, InstallOwnRoute):
                    if change.route not in self._pending:
                        self._pending.add(change.route)
                        makes.append(change)
                elif target is None:
                    path.stale.append(change.route)
                    path.installed = None
        if self._pending:
            return makes
        breaks: list[Output] = [RemoveOwnRoute(route) for route in self._orphans]
        self._orphans = []
        for path in self._paths():
            breaks += [RemoveOwnRoute(route) for route in path.stale]
            path.stale = []
            desired = self._desired(path)
            if path.lingering and (desired is None or path.installed == desired):
                breaks += [DeleteCapturedRoute(route) for route in path.lingering]
                path.lingering = []
        held, self._held = self._held, []
        return [*makes, *breaks, *held]

    # -- the table as read in one go ------------------------------------------------------

    def _snapshot(self, snapshot: TableSnapshot, now: float) -> list[Output]:
        """Compare a full read of the table with what the core believes, and repair."""
        outputs: list[Output] = []
        present = {link.ifindex for link in snapshot.links}
        for event in snapshot.links:
            outputs += self._link_changed(event, now)
        for link in list(self._links.values()):
            if link.ifindex is not None and link.ifindex not in present:
                if not snapshot.initial:
                    outputs.append(TableRepaired(link.name, "interface gone"))
                outputs += self._link_vanished(link.ifindex, link.name, now)
        defaults = {r for r in snapshot.routes if r.table == MAIN_TABLE and r.is_default}
        self._orphans = [r for r in self._orphans if r in defaults]
        for path in self._paths():
            mine = path.installed
            if mine is not None and mine not in defaults:
                path.installed = None
                what = f"pingu's {mine.describe()} is missing"
                outputs.append(TableRepaired(path.name, what, path.family))
            path.stale = [r for r in path.stale if r in defaults]
            path.lingering = [r for r in path.lingering if r in defaults]
        for route in snapshot.routes:
            owner = self._path_of(route)
            unseen = (
                not snapshot.initial
                and owner is not None
                and (owner.name, owner.family) not in self._unread
                and route.proto != self.config.proto
                and route in defaults
                and route not in owner.lingering
            )
            if unseen and owner is not None:
                what = f"{route.describe()} was added without a notification: capturing it"
                outputs.append(TableRepaired(owner.name, what, owner.family))
            outputs += self._route_appeared(route, now)
        self._unread.clear()
        return outputs

    def _router_advertised(
        self, ifindex: int, router: str, lifetime: int, now: float
    ) -> list[Output]:
        """An advertisement of the router pingu uses renews its gateway, or (lifetime 0)
        withdraws it: the IPv6 path goes down until a router's route is captured again. A
        router the path does not use changes nothing, but a withdrawn one is not put back
        at a stop. A router that was never in the table is not learned from here: the
        kernel's route (if it accepts the router) is the table's truth, as in IPv4."""
        name = self._by_index.get(ifindex)
        path = None if name is None else self._links[name].paths.get(Family.IPV6)
        if path is None or path.lease is None:
            return []
        lease = path.lease
        if lease.gateway != router:
            if lifetime == 0:
                path.lease = lease.without_router(router)
            return []
        if lifetime > 0:
            if lease.valid_until is not None:
                path.lease = dataclasses.replace(lease, valid_until=now + lifetime)
            return []
        path.lease = None
        reason = f"router {router} withdrew as default router (lifetime 0)"
        return self._apply(path, Signal.GATEWAY_LOST, reason, now)

    def _expire_leases(self, now: float) -> list[Output]:
        """A gateway learned from a router advertisement is forgotten when its lifetime
        ends without a new advertisement (the router left, or said lifetime 0)."""
        outputs: list[Output] = []
        for path in self._paths():
            lease = path.lease
            if lease is None or lease.valid_until is None or now < lease.valid_until:
                continue
            path.lease = None
            reason = f"router {lease.gateway} no longer advertised: its lifetime ended"
            outputs += self._apply(path, Signal.GATEWAY_LOST, reason, now)
        return outputs

    # -- when every uplink is down ------------------------------------------------------

    def _all_down(self, family: Family) -> bool:
        """No uplink is fit to route in `family`, and at least one round has been judged."""
        paths = [p for p in self._paths() if p.family is family]
        if not paths or not any(p.last_verdict is not None for p in paths):
            return False
        return not any(p.standing.health.routed and p.usable and p.lease is not None for p in paths)

    def _last_resort(self, family: Family) -> str | None:
        """The uplink kept when all are down (`keep_best`): the lowest loss last round."""
        if self.config.when_all_down is not WhenAllDown.KEEP_BEST or not self._all_down(family):
            self._kept[family] = None
            return None
        candidates = [
            p for p in self._paths() if p.family is family and p.usable and p.lease is not None
        ]
        if not candidates:
            self._kept[family] = None
            return None
        # On a tie, the uplink whose route is still in the table stays: no route moves.
        best = min(
            candidates,
            key=lambda p: (_loss_ratio(p), p.installed is None and not p.stale, p.config.metric),
        )
        kept = self._kept.get(family)
        current = self._path(kept, family) if kept else None
        if current is None or current not in candidates or _loss_ratio(best) < _loss_ratio(current):
            self._kept[family] = best.name
        return self._kept[family]

    def _report_last_resort(self) -> list[Output]:
        outputs: list[Output] = []
        for family in Family:
            if not any(p.family is family for p in self._paths()):
                continue
            all_down = self._all_down(family)
            kept = self._last_resort(family)
            if (all_down, kept) == self._reported.get(family, (False, None)):
                continue
            self._reported[family] = (all_down, kept)
            outputs.append(self._last_resort_report(family, all_down, kept))
        return outputs

    def _last_resort_report(self, family: Family, all_down: bool, kept: str | None) -> Report:
        if not all_down:
            return LastResort(False, None, "an uplink is up again", family)
        if kept is None:
            why = (
                "when_all_down is none"
                if self.config.when_all_down is WhenAllDown.NONE
                else "no uplink has a link and a gateway"
            )
            return LastResort(True, None, f"no default route from pingu: {why}", family)
        path = self._path(kept, family)
        verdict = path.last_verdict.reason if path and path.last_verdict else "no round yet"
        return LastResort(True, kept, f"best last round ({verdict})", family)

    # -- links ---------------------------------------------------------------------------

    def _forget_index(self, link: Link) -> None:
        if link.ifindex is not None and self._by_index.get(link.ifindex) == link.name:
            del self._by_index[link.ifindex]

    def _link_changed(self, event: LinkChanged, now: float) -> list[Output]:
        link = self._links.get(event.ifname)
        if link is None:
            self._by_index.pop(event.ifindex, None)
            return []
        outputs: list[Output] = []
        if link.ifindex is not None and link.ifindex != event.ifindex:
            # A new ifindex without its deletion seen: the interface was re-created.
            outputs += self._link_vanished(link.ifindex, link.name, now)
        was_usable = {family: path.usable for family, path in link.paths.items()}
        if link.present_since is None:
            link.present_since = now
        link.ifindex = event.ifindex
        self._by_index[event.ifindex] = link.name
        link.carrier = event.carrier
        link.admin_up = event.admin_up
        link.point_to_point = event.point_to_point
        addresses = {Family.IPV4: event.address, Family.IPV6: event.address6}
        for family, path in link.paths.items():
            if link.addresses.get(family) != addresses[family]:
                path.refused = None  # a route refused for want of an address may go in now
        link.addresses = addresses
        for family, path in link.paths.items():
            if was_usable[family] and not path.usable:
                outputs += self._apply(path, Signal.LINK_LOST, _unusable(path), now)
            elif path.usable and not was_usable[family]:
                self._round_now(path, now)
        return outputs

    def _link_vanished(self, ifindex: int, ifname: str, now: float) -> list[Output]:
        link = self._links.get(ifname)
        if link is None or link.ifindex != ifindex:
            self._by_index.pop(ifindex, None)
            return []
        was_usable = {family: path.usable for family, path in link.paths.items()}
        self._forget_index(link)
        link.ifindex = None
        link.present_since = None
        outputs: list[Output] = []
        for family, path in link.paths.items():
            # The kernel removed every route of the deleted link.
            path.installed, path.stale, path.lingering = None, [], []
            if was_usable[family]:
                outputs += self._apply(path, Signal.LINK_LOST, "interface deleted", now)
        self._pending = {r for r in self._pending if r.ifindex != ifindex}
        return outputs

    # -- rounds --------------------------------------------------------------------------

    def _round_now(self, path: Path, now: float) -> None:
        """Start a fresh round at once; a round in flight was measured on what changed."""
        path.probing = False  # its result, when it comes, no longer matches a round
        path.next_round_at = now

    def _start_due_rounds(self, now: float) -> list[Output]:
        outputs: list[Output] = []
        for path in self._paths():
            if path.probing or now < path.next_round_at:
                continue
            period = path.config.period
            following = path.next_round_at + period
            path.next_round_at = following if following > now else now + period
            outputs += self._round_due(path, now)
        return outputs

    def _round_due(self, path: Path, now: float) -> list[Output]:
        link = path.link
        if link.ifindex is None:
            return []
        if path.lease is None:
            present_for = now - (link.present_since or now)
            if present_for >= path.config.period:
                return list(self._maybe_reset(path, "no gateway learned", now))
            return []
        if not path.usable:
            if link.usable:
                return []  # no IPv6 address yet (duplicate address detection): wait
            reason = "carrier down" if not link.carrier else "interface down"
            return self._judged(path, Verdict(False, f"{reason}, nothing sent"), now, None)
        path.probing = True
        path.round_id += 1
        cfg = path.config
        return [
            StartProbe(
                uplink=path.name,
                ifindex=link.ifindex,
                gateway=path.lease.gateway,
                point_to_point=link.point_to_point,
                source=path.address,
                targets=cfg.targets_of(path.family),
                count=cfg.count,
                interval_ms=cfg.interval_ms,
                timeout_ms=cfg.timeout_ms,
                max_lost=cfg.max_lost,
                round_id=path.round_id,
                min_hosts_up=cfg.quorum(path.family),
                max_delay_ms=cfg.max_delay_ms,
                family=path.family,
            )
        ]

    def _probe_finished(
        self, name: str, family: Family, result: RoundResult, round_id: int, now: float
    ) -> list[Output]:
        path = self._path(name, family)
        if path is None:
            return []
        path.counters = path.counters.plus(
            echoes_sent=sum(t.sent for t in result.targets),
            echoes_lost=sum(t.lost for t in result.targets),
            echoes_abandoned=sum(t.abandoned for t in result.targets),
        )
        if not path.probing or round_id != path.round_id:
            return []  # abandoned: it measured a gateway or link since replaced
        path.probing = False
        path.last_result = result
        if not path.usable:
            verdict = Verdict(False, "link not usable when the round ended")
        else:
            verdict = judge(result, path.config, path.config.quorum(family))
        return self._judged(path, verdict, now, result)

    def _judged(
        self, path: Path, verdict: Verdict, now: float, result: RoundResult | None
    ) -> list[Output]:
        path.last_verdict = verdict
        path.last_round_at = now
        path.history.add_round(RoundSample.of(now, verdict.passed, result))
        path.refused = None
        outputs: list[Output] = [
            RoundJudged(path.name, verdict.passed, verdict.reason, path.family)
        ]
        signal = Signal.PASS if verdict.passed else Signal.FAIL
        outputs += self._apply(path, signal, verdict.reason, now)
        if not verdict.passed and path.standing.health is Health.DOWN:
            self._held += self._maybe_reset(path, verdict.reason, now)
        return outputs

    def _apply(self, path: Path, signal: Signal, reason: str, now: float) -> list[Output]:
        """Step the health machine; report a change and fix the route (before any script)."""
        old = path.standing
        path.standing = step(old, signal, path.config.rise, path.config.fall)
        outputs: list[Output] = []
        if path.standing.health is old.health:
            return outputs
        path.changed_at = now
        path.change_reason = reason
        self._last_event_id += 1
        event_id = self._last_event_id
        new = path.standing.health
        path.history.add_event(EventRecord(event_id, now, old.health, new, reason))
        outputs.append(StateChanged(path.name, old.health, new, reason, path.family, event_id))
        if new.routed != old.health.routed:
            self._held += self._hook(path, old.health, reason)
        return outputs

    def _hook(self, path: Path, old: Health, reason: str) -> list[RunScript]:
        """The up_script or down_script of a path whose health changed."""
        up = path.standing.health.routed
        script = path.config.up_script if up else path.config.down_script
        if script is None:
            return []
        kind = ScriptKind.UP if up else ScriptKind.DOWN
        env = (*self._script_env(path, kind, reason), ("PINGU_OLD_STATE", old.value))
        return [self._run(path, script, reason, env, kind)]

    # -- scripts -------------------------------------------------------------------------

    def _maybe_reset(self, path: Path, reason: str, now: float) -> list[RunScript]:
        """Run the reset script of a faulty uplink, at most once per grace period (one for
        the uplink: it resets the line, whichever family found it faulty), and only when no
        other family of the line still carries traffic: a reset would cut that one too (an
        ISP whose IPv6 is broken, or absent, keeps its working IPv4)."""
        link = path.link
        script = path.config.reset_script
        if script is None or link.script_running:
            return []
        others = [p for p in link.paths.values() if p is not path]
        if any(p.standing.health.routed and p.lease is not None for p in others):
            return []
        last = link.last_script_at
        if last is not None and now - last < path.config.reset_script_grace_period:
            return []
        link.last_script_at = now
        link.script_running = True
        env = self._script_env(path, ScriptKind.RESET, reason)
        return [self._run(path, script, reason, env, ScriptKind.RESET)]

    def _run(
        self,
        path: Path,
        text: str,
        reason: str,
        env: tuple[tuple[str, str], ...],
        kind: ScriptKind,
    ) -> RunScript:
        program, *args = script_argv(text)
        timeout = self.config.script_timeout
        return RunScript(
            path.name,
            program,
            reason,
            env,
            kind,
            timeout,
            tuple(args),
            family=path.family,
            event_id=path.history.last_event_id,
        )

    def _script_env(self, path: Path, kind: ScriptKind, reason: str) -> tuple[tuple[str, str], ...]:
        """The PINGU_* variables of a script for `path`. PINGU_EVENT_ID is the state change
        it is run for: an up or down script's own; a reset script's, the one that took the
        path down (empty when it never changed state: no gateway ever learned)."""
        gateway = path.lease.gateway if path.lease and path.lease.gateway else ""
        event_id = path.history.last_event_id
        env = [
            ("PINGU_EVENT", kind.value),
            ("PINGU_EVENT_ID", "" if event_id is None else str(event_id)),
            ("PINGU_METRIC", str(path.config.metric)),
            ("PINGU_INTERFACE", path.name),
            ("PINGU_FAMILY", path.family.label),
            ("PINGU_GATEWAY", gateway),
            ("PINGU_REASON", reason),
            ("PINGU_STATE", path.standing.health.value),
        ]
        result = path.last_result
        if result is not None and result.targets:
            waited = sum(t.waited for t in result.targets)
            lost = sum(t.lost for t in result.targets)
            delays = [d for t in result.targets for d in t.delays_ms]
            env.append(("PINGU_LOSS", f"{lost}/{waited}"))
            env.append(("PINGU_DELAY_MS", f"{sum(delays) / len(delays):.1f}" if delays else ""))
        return tuple(env)


def _one_kernel_route(old: Route, new: Route) -> bool:
    """IPv6 keeps one route per destination, metric and next hop: two of pingu's routes
    that differ only in attributes are one route there, the new one replaced the old when
    it was added (removing the old by its key would remove the new)."""
    key_old = (old.ifindex, old.gateway, old.dst_len, old.slot)
    key_new = (new.ifindex, new.gateway, new.dst_len, new.slot)
    return old.family is new.family is Family.IPV6 and key_old == key_new


def _lifetime_left(lease: Lease | None, now: float) -> Lease | None:
    """`lease` with its router's lifetime as seconds left at `now` (saved state's way)
    instead of a deadline on the monotonic clock (the core's)."""
    if lease is None or lease.valid_until is None:
        return lease
    return dataclasses.replace(lease, valid_until=lease.valid_until - now)


def _unusable(path: Path) -> str:
    """Why a path cannot carry traffic: the link's reason, or no address of its family."""
    link = path.link
    if link.ifindex is None:
        return "interface gone"
    if not link.carrier:
        return "carrier lost"
    if not link.admin_up:
        return "interface set down"
    return f"no {path.family.label} address"


def _label(path: Path) -> str:
    """`wan1` for an IPv4-only uplink, `wan1/ipv6` (and `wan1/ipv4`) otherwise."""
    if tuple(path.link.paths) == (Family.IPV4,):
        return path.name
    return f"{path.name}/{path.family.label}"


def _loss_ratio(path: Path) -> float:
    """The share of echoes lost in the path's last round (1.0 when nothing is known)."""
    result = path.last_result
    if result is None or not result.targets:
        return 1.0
    waited = sum(t.waited for t in result.targets)
    lost = sum(t.lost for t in result.targets)
    return lost / waited if waited else 1.0
