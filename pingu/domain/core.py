"""The decider: reacts to one event at a time with a Decision: what to do (actions) and
what to tell (reports). Its state is its own; the read side sees it through `view()`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TypeAlias

from pingu.domain.commands import (
    Action,
    DeleteCapturedRoute,
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
    LinkChanged,
    LinkVanished,
    ProbeFinished,
    RouteAppeared,
    RouteInstalled,
    RouteRefused,
    RouteVanished,
    ScriptFinished,
    TableSnapshot,
    TimerFired,
)
from pingu.domain.health import Health, HealthState, Signal, step
from pingu.domain.model import MAIN_TABLE, Lease, RoundResult, Route
from pingu.domain.reports import (
    LastResort,
    Report,
    RoundJudged,
    RouteCaptured,
    StateChanged,
    TableRepaired,
)
from pingu.domain.routes import own_route, route_diff
from pingu.domain.state import SavedUplink
from pingu.domain.verdict import Verdict, judge
from pingu.domain.views import CoreView, Counters, LinkView, RoundView, UplinkView

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
class Uplink:
    """What the core knows of one configured uplink; read-only outside this module.

    Routes in the table that concern the uplink: `installed` is pingu's route serving it
    (confirmed by the shell or seen in the table); `stale` are pingu's routes that must go
    (an old gateway, an old metric, a duplicate); `lingering` are captured foreign routes
    still in the table, deleted once pingu's replacement is in (or none is wanted).
    """

    config: UplinkConfig
    standing: HealthState
    ifindex: int | None = None
    carrier: bool = False
    admin_up: bool = False
    point_to_point: bool = False
    address: str | None = None
    present_since: float | None = None
    lease: Lease | None = None
    installed: Route | None = None
    stale: list[Route] = field(default_factory=list)
    lingering: list[Route] = field(default_factory=list)
    probing: bool = False
    round_id: int = 0
    next_round_at: float = 0.0
    script_running: bool = False
    last_script_at: float | None = None
    last_verdict: Verdict | None = None
    last_result: RoundResult | None = None
    changed_at: float = 0.0
    change_reason: str = "start-up"
    last_round_at: float | None = None
    refused: Route | None = None  # refused by the kernel: not retried before the next verdict
    counters: Counters = field(default_factory=Counters)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def usable(self) -> bool:
        """The link exists, is administratively up and has carrier."""
        return self.ifindex is not None and self.carrier and self.admin_up


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
        self._uplinks = {u.name: self._new_uplink(u, now) for u in config.uplinks}
        self._by_index: dict[int, str] = {}
        self._kept: str | None = None  # the uplink kept as a last resort (keep_best)
        self._reported: tuple[bool, str | None] = (False, None)
        self._pending: set[Route] = set()  # asked for, neither confirmed nor refused yet
        self._orphans: list[Route] = []  # pingu's routes that belong to no uplink: to remove
        self._held: list[RunScript] = []  # scripts waiting for the route changes before them

    def _new_uplink(self, config: UplinkConfig, now: float) -> Uplink:
        start = Health.UP if self.config.initial_state is InitialState.UP else Health.DOWN
        return Uplink(config=config, standing=HealthState(start), next_round_at=now, changed_at=now)

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
            case ProbeFinished(uplink=name, result=result, round_id=round_id):
                outputs += self._probe_finished(name, result, round_id, now)
            case ScriptFinished(uplink=name, kind=kind):
                if name in self._uplinks and kind is ScriptKind.RESET:
                    self._uplinks[name].script_running = False
            case RouteInstalled(route=route):
                self._route_installed(route)
            case RouteRefused(route=route):
                self._route_refused(route)
            case TableSnapshot():
                outputs += self._snapshot(event, now)
            case TimerFired():
                pass
        rounds = self._start_due_rounds(now)  # may judge a round at once (no carrier)
        outputs += self._settle()
        outputs += self._report_last_resort()
        return self._decided(outputs + rounds)

    def reconfigure(self, config: Config, now: float) -> Decision:
        """Apply a reloaded configuration (same proto): drop, add and update uplinks.

        A dropped uplink is left as pingu found it (captured routes back, pingu's removed);
        an added one knows nothing until the shell feeds it a fresh snapshot of the table.
        """
        outputs: list[Output] = []
        for name in [n for n in self._uplinks if config.uplink(n) is None]:
            outputs += self._release(self._uplinks.pop(name), at_stop=False)
        self.config = config
        for settings in config.uplinks:
            uplink = self._uplinks.get(settings.name)
            if uplink is None:
                self._uplinks[settings.name] = self._new_uplink(settings, now)
                continue
            uplink.config = settings
            uplink.next_round_at = min(uplink.next_round_at, now + settings.period)
        # The file's order is the order of the new configuration.
        self._uplinks = {u.name: self._uplinks[u.name] for u in config.uplinks}
        outputs += self._settle()
        outputs += self._report_last_resort()
        return self._decided(outputs)

    def _decided(self, outputs: list[Output]) -> Decision:
        """The outputs as a Decision, once the uplinks' counters have counted them."""
        for output in outputs:
            self._count(output)
        return Decision.of(outputs)

    def _count(self, output: Output) -> None:
        uplink: Uplink | None = None
        match output:
            case StartProbe(uplink=name):
                uplink, key = self._uplinks.get(name), "rounds"
            case StateChanged(uplink=name):
                uplink, key = self._uplinks.get(name), "state_changes"
            case RunScript(uplink=name, kind=ScriptKind.RESET):
                uplink, key = self._uplinks.get(name), "reset_script_runs"
            case InstallOwnRoute(route=route) | RemoveOwnRoute(route=route):
                uplink, key = self._uplink_of(route), "route_changes"
            case _:
                return
        if uplink is not None:
            uplink.counters = uplink.counters.plus(**{key: 1})

    # -- the read side's view ----------------------------------------------------------

    def view(self) -> CoreView:
        """A frozen copy of what the core knows, for status, metrics and logs."""
        all_down, kept = self._reported
        return CoreView(
            proto=self.config.proto,
            on_exit=self.config.on_exit,
            when_all_down=self.config.when_all_down,
            all_down=all_down,
            last_resort=kept,
            uplinks=tuple(self._uplink_view(u) for u in self._uplinks.values()),
        )

    @staticmethod
    def _uplink_view(uplink: Uplink) -> UplinkView:
        last = None
        if uplink.last_round_at is not None and uplink.last_verdict is not None:
            last = RoundView(uplink.last_round_at, uplink.last_verdict, uplink.last_result)
        return UplinkView(
            name=uplink.name,
            health=uplink.standing.health,
            since=uplink.changed_at,
            why=uplink.change_reason,
            link=LinkView(
                ifindex=uplink.ifindex,
                present=uplink.ifindex is not None,
                carrier=uplink.carrier,
                admin_up=uplink.admin_up,
                point_to_point=uplink.point_to_point,
                address=uplink.address,
            ),
            lease=uplink.lease,
            metric=uplink.config.metric,
            route=uplink.installed,
            last_round=last,
            round_running=uplink.probing,
            next_round_at=uplink.next_round_at,
            reset_script=uplink.config.reset_script,
            reset_script_at=uplink.last_script_at,
            reset_script_running=uplink.script_running,
            counters=uplink.counters,
        )

    # -- state that survives a restart --------------------------------------------------

    def saved_state(self, now: float) -> dict[str, SavedUplink]:
        """What a restart needs: leases, whether routed, seconds since the last reset."""
        saved: dict[str, SavedUplink] = {}
        for uplink in self._uplinks.values():
            health = Health.UP if uplink.standing.health.routed else Health.DOWN
            ago = None if uplink.last_script_at is None else now - uplink.last_script_at
            saved[uplink.name] = SavedUplink(uplink.lease, health, ago)
        return saved

    def adopt_state(self, saved: dict[str, SavedUplink], now: float) -> list[str]:
        """Take what an earlier run saved, before the first snapshot; returns what was taken."""
        taken: list[str] = []
        for name, entry in saved.items():
            uplink = self._uplinks.get(name)
            if uplink is None:
                continue
            if entry.lease is not None:
                lease = entry.lease
                # pingu's own routes are never put back as if they were captured.
                captured = tuple(r for r in lease.captured if r.proto != self.config.proto)
                uplink.lease = Lease(lease.gateway, captured, lease.attributes)
                taken.append(f"{name}: gateway {lease.gateway or 'none (point-to-point)'}")
            if entry.health is not None:
                uplink.standing = HealthState(entry.health)
                taken.append(f"{name}: {entry.health.value}")
            if entry.reset_script_ago is not None:
                uplink.last_script_at = now - entry.reset_script_ago
                taken.append(f"{name}: reset script ran {entry.reset_script_ago:.0f} s ago")
        return taken

    def adopt_gateways(self, gateways: dict[str, str | None], now: float) -> list[str]:
        """Take py-pingu's gateways file for uplinks that still know no gateway (after the
        state file and the first snapshot). Such a gateway may be stale (another boot, an
        old lease): its route waits until a round through it passes."""
        taken: list[str] = []
        for name, gateway in gateways.items():
            uplink = self._uplinks.get(name)
            if uplink is None or uplink.lease is not None:
                continue
            uplink.lease = Lease(gateway)
            uplink.standing = HealthState(Health.DOWN)
            self._round_now(uplink, now)
            taken.append(f"{name}: gateway {gateway or 'none (point-to-point)'}")
        return taken

    def stop(self) -> list[RouteAction]:
        """Leave the table as if pingu had never run: captured routes back, pingu's gone.

        The shell carries these out in order without reporting back: each captured route
        is put back before pingu's route of the same uplink is removed."""
        outputs: list[RouteAction] = []
        for uplink in self._uplinks.values():
            outputs += self._release(uplink, at_stop=True)
        outputs += [RemoveOwnRoute(route) for route in self._orphans]
        self._orphans = []
        return outputs

    def _release(self, uplink: Uplink, *, at_stop: bool) -> list[RouteAction]:
        """Put the uplink's captured routes back, whole, and remove pingu's (once the
        captured ones are in, unless pingu is stopping: then the order is enough)."""
        outputs: list[RouteAction] = []
        lease = uplink.lease
        restore: list[Route] = []
        if lease is not None and uplink.ifindex is not None:
            in_table = set(uplink.lingering)
            restore = [
                dataclasses.replace(route, ifindex=uplink.ifindex, ifname=uplink.name)
                for route in lease.captured
            ]
            restore = [route for route in restore if route not in in_table]
        outputs += [RestoreCapturedRoute(route) for route in restore]
        mine = [*([uplink.installed] if uplink.installed else []), *uplink.stale]
        uplink.installed, uplink.stale, uplink.lingering = None, [], []
        if at_stop:
            outputs += [RemoveOwnRoute(route) for route in mine]
        else:
            self._pending.update(restore)
            self._orphans += mine
        return outputs

    def desired_routes(self) -> list[Route]:
        """pingu's routes that should be in the table now, one per uplink that is wanted."""
        return [r for u in self._uplinks.values() if (r := self._desired(u)) is not None]

    @property
    def all_down_state(self) -> tuple[bool, str | None]:
        """Whether every uplink is down, and which one is kept as a last resort."""
        return self._reported

    def next_deadline(self) -> float | None:
        """When the core next needs a `TimerFired` (the earliest round due), if ever."""
        due = [u.next_round_at for u in self._uplinks.values() if not u.probing]
        return min(due) if due else None

    # -- routes --------------------------------------------------------------------------

    def _uplink_of(self, route: Route) -> Uplink | None:
        name = route.ifname or self._by_index.get(route.ifindex)
        uplink = self._uplinks.get(name) if name is not None else None
        if uplink is not None and uplink.ifindex not in (None, route.ifindex):
            return None  # a route of the interface's previous incarnation
        return uplink

    def _route_appeared(self, route: Route, now: float) -> list[Output]:
        if route.table != MAIN_TABLE or not route.is_default:
            return []
        uplink = self._uplink_of(route)
        if route.proto == self.config.proto:
            self._own_route_seen(uplink, route, now)
            return []
        if uplink is None:
            return []
        return self._capture(uplink, route, now)

    def _own_route_seen(self, uplink: Uplink | None, route: Route, now: float) -> None:
        """A route with pingu's proto: adopt it if it is the uplink's, else it must go."""
        if route in self._pending or route in self._orphans:
            return  # one the core asked for: its confirmation tells the rest
        if uplink is None or route.metric != uplink.config.metric:
            self._orphans.append(route)
            return
        if route == uplink.installed or route in uplink.stale:
            return
        if uplink.ifindex is None:
            uplink.ifindex = route.ifindex
            self._by_index[route.ifindex] = uplink.name
        if uplink.lease is None:
            # Left by an earlier run of pingu: trust its gateway, and re-validate it now.
            uplink.lease = Lease(route.gateway, (), route.attributes)
            self._round_now(uplink, now)
        if uplink.installed is None and route == self._desired(uplink):
            uplink.installed = route
        else:
            uplink.stale.append(route)  # a duplicate, or not wanted now

    def _capture(self, uplink: Uplink, route: Route, now: float) -> list[Output]:
        """Learn the gateway of a foreign default route; it goes once pingu's is in."""
        old = uplink.lease
        uplink.lease = (old or Lease(None)).with_capture(route)
        if uplink.ifindex != route.ifindex:
            self._forget_index(uplink)
            uplink.ifindex = route.ifindex
            self._by_index[route.ifindex] = uplink.name
        if route not in uplink.lingering:
            uplink.lingering.append(route)
        changed = old is None or old.gateway != route.gateway
        if changed:
            self._round_now(uplink, now)
        return [RouteCaptured(uplink.name, route, changed)]

    def _displaced_by(self, route: Route) -> list[Output]:
        """`route` replaced whatever route held its slot, without any RTM_DELROUTE: if that
        was pingu's, pingu's is gone (and goes back in beside it, by the next settle)."""
        if route.table != MAIN_TABLE or not route.is_default:
            return []
        outputs: list[Output] = []
        for uplink in self._uplinks.values():
            mine = uplink.installed
            if mine is not None and mine.slot == route.slot and mine != route:
                uplink.installed = None
                outputs.append(
                    TableRepaired(
                        uplink.name,
                        f"pingu's {mine.describe()} was replaced by {route.describe()}; "
                        "putting it back",
                    )
                )
            uplink.stale = [r for r in uplink.stale if r.slot != route.slot or r == route]
            uplink.lingering = [r for r in uplink.lingering if r.slot != route.slot or r == route]
        self._orphans = [r for r in self._orphans if r.slot != route.slot or r == route]
        return outputs

    def _route_vanished(self, route: Route) -> None:
        if route.table != MAIN_TABLE or not route.is_default:
            return
        uplink = self._uplink_of(route)
        self._orphans = [r for r in self._orphans if r != route]
        if uplink is None:
            return
        if uplink.installed == route:
            uplink.installed = None  # deleted by someone else: the next settle puts it back
        uplink.stale = [r for r in uplink.stale if r != route]
        uplink.lingering = [r for r in uplink.lingering if r != route]

    def _route_installed(self, route: Route) -> None:
        """The shell confirms that `route`, which the core asked for, is in the table."""
        self._pending.discard(route)
        if route.proto != self.config.proto:
            return  # a captured route put back
        uplink = self._uplink_of(route)
        if uplink is None:
            self._orphans.append(route)
        elif route == self._desired(uplink):
            if uplink.installed is not None and uplink.installed != route:
                uplink.stale.append(uplink.installed)
            uplink.installed = route
        elif route != uplink.installed and route not in uplink.stale:
            uplink.stale.append(route)  # no longer wanted by the time it was in

    def _route_refused(self, route: Route) -> None:
        """Not in the table after all: the next verdict tries again; meanwhile the captured
        route it would have replaced stays."""
        self._pending.discard(route)
        uplink = self._uplink_of(route)
        if uplink is not None and route.proto == self.config.proto:
            uplink.refused = route

    def _desired(self, uplink: Uplink) -> Route | None:
        if not (uplink.usable and uplink.lease is not None):
            return None
        if not uplink.standing.health.routed and self._last_resort() != uplink.name:
            return None
        assert uplink.ifindex is not None
        return own_route(
            uplink.ifindex,
            uplink.name,
            uplink.lease.gateway,
            uplink.config.metric,
            self.config.proto,
            attributes=uplink.lease.attributes,
        )

    def _settle(self) -> list[Output]:
        """Every uplink's routes as they should be: what must be added now; what must go
        (and the scripts held back) once nothing asked for is awaiting confirmation.

        Each uplink's own route follows `route_diff` (the new route first, the old one
        after): the new one is asked for now; the old one stays until the new one is
        confirmed (`_route_installed` retires it), or goes at once when no route is wanted
        or the one wanted was refused."""
        makes: list[Output] = []
        for uplink in self._uplinks.values():
            desired = self._desired(uplink)
            target = None if desired == uplink.refused else desired
            for change in route_diff(uplink.installed, target):
                if isinstance(change, InstallOwnRoute):
                    if change.route not in self._pending:
                        self._pending.add(change.route)
                        makes.append(change)
                elif target is None:
                    uplink.stale.append(change.route)
                    uplink.installed = None
        if self._pending:
            return makes
        breaks: list[Output] = [RemoveOwnRoute(route) for route in self._orphans]
        self._orphans = []
        for uplink in self._uplinks.values():
            breaks += [RemoveOwnRoute(route) for route in uplink.stale]
            uplink.stale = []
            desired = self._desired(uplink)
            if uplink.lingering and (desired is None or uplink.installed == desired):
                breaks += [DeleteCapturedRoute(route) for route in uplink.lingering]
                uplink.lingering = []
        held, self._held = self._held, []
        return [*makes, *breaks, *held]

    # -- the table as read in one go ------------------------------------------------------

    def _snapshot(self, snapshot: TableSnapshot, now: float) -> list[Output]:
        """Compare a full read of the table with what the core believes, and repair."""
        outputs: list[Output] = []
        present = {link.ifindex for link in snapshot.links}
        for link in snapshot.links:
            outputs += self._link_changed(link, now)
        for uplink in list(self._uplinks.values()):
            if uplink.ifindex is not None and uplink.ifindex not in present:
                if not snapshot.initial:
                    outputs.append(TableRepaired(uplink.name, "interface gone"))
                outputs += self._link_vanished(uplink.ifindex, uplink.name, now)
        defaults = {r for r in snapshot.routes if r.table == MAIN_TABLE and r.is_default}
        self._orphans = [r for r in self._orphans if r in defaults]
        for uplink in self._uplinks.values():
            mine = uplink.installed
            if mine is not None and mine not in defaults:
                uplink.installed = None
                outputs.append(TableRepaired(uplink.name, f"pingu's {mine.describe()} is missing"))
            uplink.stale = [r for r in uplink.stale if r in defaults]
            uplink.lingering = [r for r in uplink.lingering if r in defaults]
        for route in snapshot.routes:
            owner = self._uplink_of(route)
            unseen = (
                not snapshot.initial
                and owner is not None
                and route.proto != self.config.proto
                and route in defaults
                and route not in owner.lingering
            )
            if unseen and owner is not None:
                what = f"{route.describe()} was added without a notification: capturing it"
                outputs.append(TableRepaired(owner.name, what))
            outputs += self._route_appeared(route, now)
        return outputs

    # -- when every uplink is down ------------------------------------------------------

    def _all_down(self) -> bool:
        """No uplink is fit to route, and at least one round has been judged."""
        if not any(u.last_verdict is not None for u in self._uplinks.values()):
            return False
        return not any(
            u.standing.health.routed and u.usable and u.lease is not None
            for u in self._uplinks.values()
        )

    def _last_resort(self) -> str | None:
        """The uplink kept when all are down (`keep_best`): the lowest loss last round."""
        if self.config.when_all_down is not WhenAllDown.KEEP_BEST or not self._all_down():
            self._kept = None
            return None
        candidates = [u for u in self._uplinks.values() if u.usable and u.lease is not None]
        if not candidates:
            self._kept = None
            return None
        # On a tie, the uplink whose route is still in the table stays: no route moves.
        best = min(
            candidates,
            key=lambda u: (_loss_ratio(u), u.installed is None and not u.stale, u.config.metric),
        )
        current = self._uplinks.get(self._kept) if self._kept else None
        if current is None or current not in candidates or _loss_ratio(best) < _loss_ratio(current):
            self._kept = best.name
        return self._kept

    def _report_last_resort(self) -> list[Output]:
        all_down = self._all_down()
        kept = self._last_resort()
        if (all_down, kept) == self._reported:
            return []
        self._reported = (all_down, kept)
        if not all_down:
            return [LastResort(False, None, "an uplink is up again")]
        if kept is None:
            why = (
                "when_all_down is none"
                if self.config.when_all_down is WhenAllDown.NONE
                else "no uplink has a link and a gateway"
            )
            return [LastResort(True, None, f"no default route from pingu: {why}")]
        uplink = self._uplinks[kept]
        verdict = uplink.last_verdict.reason if uplink.last_verdict else "no round yet"
        return [LastResort(True, kept, f"best last round ({verdict})")]

    # -- links ---------------------------------------------------------------------------

    def _forget_index(self, uplink: Uplink) -> None:
        if uplink.ifindex is not None and self._by_index.get(uplink.ifindex) == uplink.name:
            del self._by_index[uplink.ifindex]

    def _link_changed(self, event: LinkChanged, now: float) -> list[Output]:
        uplink = self._uplinks.get(event.ifname)
        if uplink is None:
            self._by_index.pop(event.ifindex, None)
            return []
        outputs: list[Output] = []
        if uplink.ifindex is not None and uplink.ifindex != event.ifindex:
            # A new ifindex without its deletion seen: the interface was re-created.
            outputs += self._link_vanished(uplink.ifindex, uplink.name, now)
        was_usable = uplink.usable
        if uplink.present_since is None:
            uplink.present_since = now
        uplink.ifindex = event.ifindex
        self._by_index[event.ifindex] = uplink.name
        uplink.carrier = event.carrier
        uplink.admin_up = event.admin_up
        uplink.point_to_point = event.point_to_point
        if uplink.address != event.address:
            uplink.refused = None  # a route refused for want of an address may go in now
        uplink.address = event.address
        if was_usable and not uplink.usable:
            reason = "carrier lost" if not event.carrier else "interface set down"
            outputs += self._apply(uplink, Signal.LINK_LOST, reason, now)
        elif uplink.usable and not was_usable:
            self._round_now(uplink, now)
        return outputs

    def _link_vanished(self, ifindex: int, ifname: str, now: float) -> list[Output]:
        uplink = self._uplinks.get(ifname)
        if uplink is None or uplink.ifindex != ifindex:
            self._by_index.pop(ifindex, None)
            return []
        was_usable = uplink.usable
        self._forget_index(uplink)
        uplink.ifindex = None
        uplink.present_since = None
        # The kernel removed every route of the deleted link.
        uplink.installed, uplink.stale, uplink.lingering = None, [], []
        self._pending = {r for r in self._pending if r.ifindex != ifindex}
        if was_usable:
            return self._apply(uplink, Signal.LINK_LOST, "interface deleted", now)
        return []

    # -- rounds --------------------------------------------------------------------------

    def _round_now(self, uplink: Uplink, now: float) -> None:
        """Start a fresh round at once; a round in flight was measured on what changed."""
        uplink.probing = False  # its result, when it comes, no longer matches a round
        uplink.next_round_at = now

    def _start_due_rounds(self, now: float) -> list[Output]:
        outputs: list[Output] = []
        for uplink in self._uplinks.values():
            if uplink.probing or now < uplink.next_round_at:
                continue
            period = uplink.config.period
            following = uplink.next_round_at + period
            uplink.next_round_at = following if following > now else now + period
            outputs += self._round_due(uplink, now)
        return outputs

    def _round_due(self, uplink: Uplink, now: float) -> list[Output]:
        if uplink.ifindex is None:
            return []
        if uplink.lease is None:
            present_for = now - (uplink.present_since or now)
            if present_for >= uplink.config.period:
                return list(self._maybe_reset(uplink, "no gateway learned", now))
            return []
        if not uplink.usable:
            reason = "carrier down" if not uplink.carrier else "interface down"
            verdict = Verdict(False, f"{reason}, nothing sent")
            return self._judged(uplink, verdict, now)
        uplink.probing = True
        uplink.round_id += 1
        cfg = uplink.config
        return [
            StartProbe(
                uplink=uplink.name,
                ifindex=uplink.ifindex,
                gateway=uplink.lease.gateway,
                point_to_point=uplink.point_to_point,
                source=uplink.address,
                targets=cfg.targets,
                count=cfg.count,
                interval_ms=cfg.interval_ms,
                timeout_ms=cfg.timeout_ms,
                max_lost=cfg.max_lost,
                round_id=uplink.round_id,
                min_hosts_up=cfg.min_hosts_up,
                max_delay_ms=cfg.max_delay_ms,
            )
        ]

    def _probe_finished(
        self, name: str, result: RoundResult, round_id: int, now: float
    ) -> list[Output]:
        uplink = self._uplinks.get(name)
        if uplink is None:
            return []
        uplink.counters = uplink.counters.plus(
            echoes_sent=sum(t.sent for t in result.targets),
            echoes_lost=sum(t.lost for t in result.targets),
            echoes_abandoned=sum(t.abandoned for t in result.targets),
        )
        if not uplink.probing or round_id != uplink.round_id:
            return []  # abandoned: it measured a gateway or link since replaced
        uplink.probing = False
        uplink.last_result = result
        if not uplink.usable:
            verdict = Verdict(False, "link not usable when the round ended")
        else:
            verdict = judge(result, uplink.config)
        return self._judged(uplink, verdict, now)

    def _judged(self, uplink: Uplink, verdict: Verdict, now: float) -> list[Output]:
        uplink.last_verdict = verdict
        uplink.last_round_at = now
        uplink.refused = None
        outputs: list[Output] = [RoundJudged(uplink.name, verdict.passed, verdict.reason)]
        signal = Signal.PASS if verdict.passed else Signal.FAIL
        outputs += self._apply(uplink, signal, verdict.reason, now)
        if not verdict.passed and uplink.standing.health is Health.DOWN:
            self._held += self._maybe_reset(uplink, verdict.reason, now)
        return outputs

    def _apply(self, uplink: Uplink, signal: Signal, reason: str, now: float) -> list[Output]:
        """Step the health machine; report a change and fix the route (before any script)."""
        old = uplink.standing
        uplink.standing = step(old, signal, uplink.config.rise, uplink.config.fall)
        outputs: list[Output] = []
        if uplink.standing.health is not old.health:
            uplink.changed_at = now
            uplink.change_reason = reason
            outputs.append(StateChanged(uplink.name, old.health, uplink.standing.health, reason))
        if uplink.standing.health.routed != old.health.routed:
            self._held += self._hook(uplink, old.health, reason)
        return outputs

    def _hook(self, uplink: Uplink, old: Health, reason: str) -> list[RunScript]:
        """The up_script or down_script of an uplink whose route came or went."""
        up = uplink.standing.health.routed
        script = uplink.config.up_script if up else uplink.config.down_script
        if script is None:
            return []
        kind = ScriptKind.UP if up else ScriptKind.DOWN
        env = (*self._script_env(uplink, kind, reason), ("PINGU_OLD_STATE", old.value))
        return [self._run(uplink, script, reason, env, kind)]

    # -- scripts -------------------------------------------------------------------------

    def _maybe_reset(self, uplink: Uplink, reason: str, now: float) -> list[RunScript]:
        """Run the reset script of a faulty uplink, at most once per grace period."""
        script = uplink.config.reset_script
        if script is None or uplink.script_running:
            return []
        last = uplink.last_script_at
        if last is not None and now - last < uplink.config.reset_script_grace_period:
            return []
        uplink.last_script_at = now
        uplink.script_running = True
        env = self._script_env(uplink, ScriptKind.RESET, reason)
        return [self._run(uplink, script, reason, env, ScriptKind.RESET)]

    def _run(
        self,
        uplink: Uplink,
        text: str,
        reason: str,
        env: tuple[tuple[str, str], ...],
        kind: ScriptKind,
    ) -> RunScript:
        path, *args = script_argv(text)
        timeout = self.config.script_timeout
        return RunScript(uplink.name, path, reason, env, kind, timeout, tuple(args))

    def _script_env(
        self, uplink: Uplink, kind: ScriptKind, reason: str
    ) -> tuple[tuple[str, str], ...]:
        gateway = uplink.lease.gateway if uplink.lease and uplink.lease.gateway else ""
        env = [
            ("PINGU_EVENT", kind.value),
            ("PINGU_METRIC", str(uplink.config.metric)),
            ("PINGU_INTERFACE", uplink.name),
            ("PINGU_GATEWAY", gateway),
            ("PINGU_REASON", reason),
            ("PINGU_STATE", uplink.standing.health.value),
        ]
        result = uplink.last_result
        if result is not None and result.targets:
            waited = sum(t.waited for t in result.targets)
            lost = sum(t.lost for t in result.targets)
            delays = [d for t in result.targets for d in t.delays_ms]
            env.append(("PINGU_LOSS", f"{lost}/{waited}"))
            env.append(("PINGU_DELAY_MS", f"{sum(delays) / len(delays):.1f}" if delays else ""))
        return tuple(env)


def _loss_ratio(uplink: Uplink) -> float:
    """The share of echoes lost in the uplink's last round (1.0 when nothing is known)."""
    result = uplink.last_result
    if result is None or not result.targets:
        return 1.0
    waited = sum(t.waited for t in result.targets)
    lost = sum(t.lost for t in result.targets)
    return lost / waited if waited else 1.0
