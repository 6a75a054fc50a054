"""The decider: reacts to one event at a time, returning the commands that carry it out."""

from __future__ import annotations

from dataclasses import dataclass

from pingu.domain.commands import (
    Command,
    DeleteRoute,
    RestoreRoute,
    RoundJudged,
    RouteCaptured,
    RunScript,
    StartProbe,
    StateChanged,
)
from pingu.domain.config import Config, InitialState, UplinkConfig
from pingu.domain.events import (
    Event,
    LinkChanged,
    LinkVanished,
    ProbeFinished,
    RouteAppeared,
    RouteRefused,
    RouteVanished,
    ScriptFinished,
    TimerFired,
)
from pingu.domain.health import Health, HealthState, Signal, step
from pingu.domain.model import MAIN_TABLE, Lease, RoundResult, Route
from pingu.domain.routes import own_route, route_diff
from pingu.domain.verdict import Verdict, judge


@dataclass
class Uplink:
    """What the core knows of one configured uplink; read-only outside this module."""

    config: UplinkConfig
    health: HealthState
    ifindex: int | None = None
    carrier: bool = False
    admin_up: bool = False
    point_to_point: bool = False
    address: str | None = None
    present_since: float | None = None
    lease: Lease | None = None
    installed: Route | None = None
    probing: bool = False
    round_id: int = 0
    next_round_at: float = 0.0
    script_running: bool = False
    last_script_at: float | None = None
    last_verdict: Verdict | None = None
    last_result: RoundResult | None = None
    changed_at: float = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def usable(self) -> bool:
        """The link exists, is administratively up and has carrier."""
        return self.ifindex is not None and self.carrier and self.admin_up


class Core:
    """The pure core of pingu: `handle(event, now)` returns commands, never performs them."""

    def __init__(self, config: Config, now: float) -> None:
        self.config = config
        start = Health.UP if config.initial_state is InitialState.UP else Health.DOWN
        self.uplinks: dict[str, Uplink] = {
            u.name: Uplink(config=u, health=HealthState(start), next_round_at=now, changed_at=now)
            for u in config.uplinks
        }
        self._by_index: dict[int, str] = {}

    # -- the one entry point -------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Command]:
        """Apply `event` at monotonic time `now`; return what must be done, in order."""
        commands: list[Command] = []
        match event:
            case RouteAppeared(route=route):
                commands += self._route_appeared(route, now)
            case RouteVanished(route=route):
                commands += self._route_vanished(route)
            case LinkChanged():
                commands += self._link_changed(event, now)
            case LinkVanished(ifindex=ifindex, ifname=ifname):
                commands += self._link_vanished(ifindex, ifname, now)
            case ProbeFinished(uplink=name, result=result, round_id=round_id):
                commands += self._probe_finished(name, result, round_id, now)
            case ScriptFinished(uplink=name):
                if name in self.uplinks:
                    self.uplinks[name].script_running = False
            case RouteRefused(route=route):
                self._route_refused(route)
            case TimerFired():
                pass
        commands += self._start_due_rounds(now)
        return commands

    def stop(self) -> list[Command]:
        """Leave the table as if pingu had never run: captured routes back, pingu's gone."""
        commands: list[Command] = []
        for uplink in self.uplinks.values():
            lease = uplink.lease
            if (
                lease is not None
                and uplink.ifindex is not None
                and lease.proto != self.config.proto
            ):
                captured = Route(
                    ifindex=uplink.ifindex,
                    ifname=uplink.name,
                    gateway=lease.gateway,
                    metric=lease.metric,
                    proto=lease.proto,
                    scope=lease.scope,
                )
                commands.append(RestoreRoute(captured))
            if uplink.installed is not None:
                commands += route_diff(uplink.installed, None)
                uplink.installed = None
        return commands

    def next_deadline(self) -> float | None:
        """When the core next needs a `TimerFired` (the earliest round due), if ever."""
        due = [u.next_round_at for u in self.uplinks.values() if not u.probing]
        return min(due) if due else None

    # -- routes --------------------------------------------------------------------------

    def _uplink_of(self, route: Route) -> Uplink | None:
        name = route.ifname or self._by_index.get(route.ifindex)
        return self.uplinks.get(name) if name is not None else None

    def _route_appeared(self, route: Route, now: float) -> list[Command]:
        if route.table != MAIN_TABLE or not route.is_default:
            return []
        uplink = self._uplink_of(route)
        if route.proto == self.config.proto:
            return self._own_route_seen(uplink, route, now)
        if uplink is None:
            return []
        return self._capture(uplink, route, now)

    def _own_route_seen(self, uplink: Uplink | None, route: Route, now: float) -> list[Command]:
        """A route with pingu's proto: adopt it if it is the uplink's, else it is stale."""
        if uplink is None or route.metric != uplink.config.metric:
            return list(route_diff(route, None))
        if uplink.installed is not None and uplink.installed != route:
            # Two pingu routes for one uplink (a leftover): keep the expected one.
            return list(route_diff(route, None))
        uplink.ifindex = route.ifindex if uplink.ifindex is None else uplink.ifindex
        uplink.installed = route
        if uplink.lease is None:
            # Left by an earlier run of pingu: trust its gateway, and re-validate it now.
            uplink.lease = Lease(route.gateway, route.metric, route.proto, route.scope)
            self._round_now(uplink, now)
        return self._reconcile(uplink)

    def _capture(self, uplink: Uplink, route: Route, now: float) -> list[Command]:
        """Learn the gateway of a foreign default route, put pingu's own in place, delete it."""
        old = uplink.lease
        uplink.lease = Lease(route.gateway, route.metric, route.proto, route.scope)
        if uplink.ifindex != route.ifindex:
            self._forget_index(uplink)
            uplink.ifindex = route.ifindex
            self._by_index[route.ifindex] = uplink.name
        changed = old is None or old.gateway != route.gateway
        commands: list[Command] = [RouteCaptured(uplink.name, route, changed)]
        commands += self._reconcile(uplink)
        commands.append(DeleteRoute(route))
        if changed:
            self._round_now(uplink, now)
        return commands

    def _route_vanished(self, route: Route) -> list[Command]:
        if route.table != MAIN_TABLE or not route.is_default or route.proto != self.config.proto:
            return []
        uplink = self._uplink_of(route)
        if uplink is None or uplink.installed != route:
            return []
        uplink.installed = None
        return self._reconcile(uplink)

    def _route_refused(self, route: Route) -> None:
        """Not in the table after all: the next reconcile (next verdict) tries again."""
        uplink = self._uplink_of(route)
        if uplink is not None and uplink.installed == route:
            uplink.installed = None

    def _desired(self, uplink: Uplink) -> Route | None:
        if not (uplink.health.health.routed and uplink.usable and uplink.lease is not None):
            return None
        assert uplink.ifindex is not None
        return own_route(
            uplink.ifindex,
            uplink.name,
            uplink.lease.gateway,
            uplink.config.metric,
            self.config.proto,
        )

    def _reconcile(self, uplink: Uplink) -> list[Command]:
        desired = self._desired(uplink)
        commands = route_diff(uplink.installed, desired)
        uplink.installed = desired
        return list(commands)

    # -- links ---------------------------------------------------------------------------

    def _forget_index(self, uplink: Uplink) -> None:
        if uplink.ifindex is not None and self._by_index.get(uplink.ifindex) == uplink.name:
            del self._by_index[uplink.ifindex]

    def _link_changed(self, event: LinkChanged, now: float) -> list[Command]:
        uplink = self.uplinks.get(event.ifname)
        if uplink is None:
            self._by_index.pop(event.ifindex, None)
            return []
        commands: list[Command] = []
        if uplink.ifindex is not None and uplink.ifindex != event.ifindex:
            # A new ifindex without its deletion seen: the interface was re-created.
            commands += self._link_vanished(uplink.ifindex, uplink.name, now)
        was_usable = uplink.usable
        if uplink.present_since is None:
            uplink.present_since = now
        uplink.ifindex = event.ifindex
        self._by_index[event.ifindex] = uplink.name
        uplink.carrier = event.carrier
        uplink.admin_up = event.admin_up
        uplink.point_to_point = event.point_to_point
        uplink.address = event.address
        if was_usable and not uplink.usable:
            reason = "carrier lost" if not event.carrier else "interface set down"
            commands += self._apply(uplink, Signal.LINK_LOST, reason, now)
        elif uplink.usable and not was_usable:
            self._round_now(uplink, now)
        return commands + self._reconcile(uplink)

    def _link_vanished(self, ifindex: int, ifname: str, now: float) -> list[Command]:
        uplink = self.uplinks.get(ifname)
        if uplink is None or uplink.ifindex != ifindex:
            self._by_index.pop(ifindex, None)
            return []
        was_usable = uplink.usable
        self._forget_index(uplink)
        uplink.ifindex = None
        uplink.present_since = None
        uplink.installed = None  # the kernel removed every route of the deleted link
        if was_usable:
            return self._apply(uplink, Signal.LINK_LOST, "interface deleted", now)
        return []

    # -- rounds --------------------------------------------------------------------------

    def _round_now(self, uplink: Uplink, now: float) -> None:
        """Start a fresh round at once; a round in flight was measured on what changed."""
        uplink.probing = False  # its result, when it comes, no longer matches a round
        uplink.next_round_at = now

    def _start_due_rounds(self, now: float) -> list[Command]:
        commands: list[Command] = []
        for uplink in self.uplinks.values():
            if uplink.probing or now < uplink.next_round_at:
                continue
            period = uplink.config.period
            following = uplink.next_round_at + period
            uplink.next_round_at = following if following > now else now + period
            commands += self._round_due(uplink, now)
        return commands

    def _round_due(self, uplink: Uplink, now: float) -> list[Command]:
        if uplink.ifindex is None:
            return []
        if uplink.lease is None:
            present_for = now - (uplink.present_since or now)
            if present_for >= uplink.config.period:
                return self._maybe_reset(uplink, "no gateway learned", now)
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
            )
        ]

    def _probe_finished(
        self, name: str, result: RoundResult, round_id: int, now: float
    ) -> list[Command]:
        uplink = self.uplinks.get(name)
        if uplink is None or not uplink.probing or round_id != uplink.round_id:
            return []  # unknown, or abandoned: it measured a gateway or link since replaced
        uplink.probing = False
        uplink.last_result = result
        if not uplink.usable:
            verdict = Verdict(False, "link not usable when the round ended")
        else:
            verdict = judge(result, uplink.config)
        return self._judged(uplink, verdict, now)

    def _judged(self, uplink: Uplink, verdict: Verdict, now: float) -> list[Command]:
        uplink.last_verdict = verdict
        commands: list[Command] = [RoundJudged(uplink.name, verdict.passed, verdict.reason)]
        signal = Signal.PASS if verdict.passed else Signal.FAIL
        commands += self._apply(uplink, signal, verdict.reason, now)
        if not verdict.passed and uplink.health.health is Health.DOWN:
            commands += self._maybe_reset(uplink, verdict.reason, now)
        return commands

    def _apply(self, uplink: Uplink, signal: Signal, reason: str, now: float) -> list[Command]:
        """Step the health machine; report a change and fix the route (before any script)."""
        old = uplink.health
        uplink.health = step(old, signal, uplink.config.rise, uplink.config.fall)
        commands: list[Command] = []
        if uplink.health.health is not old.health:
            uplink.changed_at = now
            commands.append(
                StateChanged(uplink.name, old.health.value, uplink.health.health.value, reason)
            )
        return commands + self._reconcile(uplink)

    # -- scripts -------------------------------------------------------------------------

    def _maybe_reset(self, uplink: Uplink, reason: str, now: float) -> list[Command]:
        """Run the reset script of a faulty uplink, at most once per grace period."""
        script = uplink.config.reset_script
        if script is None or uplink.script_running:
            return []
        last = uplink.last_script_at
        if last is not None and now - last < uplink.config.reset_script_grace_period:
            return []
        uplink.last_script_at = now
        uplink.script_running = True
        return [RunScript(uplink.name, script, reason, self._script_env(uplink, reason))]

    def _script_env(self, uplink: Uplink, reason: str) -> tuple[tuple[str, str], ...]:
        gateway = uplink.lease.gateway if uplink.lease and uplink.lease.gateway else ""
        env = [
            ("PINGU_EVENT", "reset"),
            ("PINGU_INTERFACE", uplink.name),
            ("PINGU_GATEWAY", gateway),
            ("PINGU_REASON", reason),
            ("PINGU_STATE", uplink.health.health.value),
        ]
        result = uplink.last_result
        if result is not None and result.targets:
            sent = sum(t.sent for t in result.targets)
            lost = sum(t.lost for t in result.targets)
            delays = [d for t in result.targets for d in t.delays_ms]
            env.append(("PINGU_LOSS", f"{lost}/{sent}"))
            env.append(("PINGU_DELAY_MS", f"{sum(delays) / len(delays):.1f}" if delays else ""))
        return tuple(env)
