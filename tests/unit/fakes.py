"""Small stateful fakes of the outside world, for driving the core without a network, and
the asyncio shell without a kernel."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from dependency_injector import containers, providers

from pingu.domain.commands import (
    DeleteCapturedRoute,
    EndFlows,
    InstallOwnRoute,
    RemoveOwnRoute,
    RestoreCapturedRoute,
    RunScript,
    StartProbe,
)
from pingu.domain.config import Config, InitialState, UplinkConfig
from pingu.domain.core import Core, Decision, Output
from pingu.domain.events import (
    Event,
    FlowsEnded,
    LinkChanged,
    LinkVanished,
    ProbeFinished,
    RouteAppeared,
    RouteInstalled,
    RouteRefused,
    RouteVanished,
    TableSnapshot,
    TimerFired,
)
from pingu.domain.model import Family, RoundResult, Route, TargetResult
from pingu.domain.ports import Resync, RouteChangeFailed
from pingu.domain.reports import (
    StateChanged,
)
from pingu.domain.state import StateError

PROTO = 136
TARGET = "203.0.113.10"
TARGET6 = "2001:db8:ffff::10"


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeKernel:
    """Table main as a set of routes; commands are applied the way the adapter does, and a
    route added is reported back as the shell reports it (installed, or refused when it is
    in `refuse`)."""

    routes: set[Route] = field(default_factory=set)
    refuse: set[Route] = field(default_factory=set)
    # Every table main passed through: after each event's own effect, after each command.
    history: list[tuple[Output | Event, frozenset[Route]]] = field(default_factory=list)

    def apply(self, command: Output) -> RouteInstalled | RouteRefused | None:
        report = self._apply(command)
        self.history.append((command, frozenset(self.routes)))
        return report

    def _apply(self, command: Output) -> RouteInstalled | RouteRefused | None:
        match command:
            case InstallOwnRoute(route=route) | RestoreCapturedRoute(route=route):
                if route in self.refuse:
                    return RouteRefused(route, "Nexthop has invalid gateway")
                self.routes.add(route)
                return RouteInstalled(route)
            case RemoveOwnRoute(route=route) | DeleteCapturedRoute(route=route):
                self.routes.discard(route)
            case _:
                pass
        return None

    def replace(self, route: Route) -> None:
        """`route` added with NLM_F_REPLACE: it takes the place of its slot's route."""
        self.routes -= {r for r in self.routes if r.slot == route.slot and r.dst_len == 0}
        self.routes.add(route)

    def own(self, ifname: str) -> list[Route]:
        return [
            r
            for r in self.defaults()
            if r.proto == PROTO and (r.ifname or _name_of(r.ifindex)) == ifname
        ]

    def defaults(self) -> list[Route]:
        return [r for r in self.routes if r.dst_len == 0 and r.table == 254]


def uplink(name: str, metric: int, **settings: object) -> UplinkConfig:
    """An uplink's settings with the seed's defaults, overridden by `settings`."""
    fields: dict[str, object] = {"targets": (TARGET,), "period": 5.0}
    fields.update(settings)
    return UplinkConfig(name=name, metric=metric, **fields)  # type: ignore[arg-type]


def config(*uplinks: UplinkConfig, initial: InitialState = InitialState.UP) -> Config:
    return Config(proto=PROTO, uplinks=uplinks, initial_state=initial)


IFINDEX = {"wan1": 2, "wan2": 3, "ppp0": 4, "eth9": 9}


def _name_of(ifindex: int) -> str | None:
    return next((name for name, index in IFINDEX.items() if index == ifindex), None)


def dhcp_route(ifname: str, gateway: str | None, metric: int = 1024, proto: int = 16) -> Route:
    return Route(
        ifindex=IFINDEX[ifname],
        ifname=ifname,
        gateway=gateway,
        metric=metric,
        proto=proto,
        scope=0 if gateway else 253,
    )


def round_result(
    sent: int = 5,
    received: int = 5,
    delay_ms: float = 10.0,
    target: str = TARGET,
    early: bool = False,
) -> RoundResult:
    return RoundResult((TargetResult(target, sent, received, (delay_ms,) * received),), early)


class Driver:
    """Feeds events to a core at a fake time, applies its commands to a fake kernel."""

    def __init__(self, cfg: Config) -> None:
        self.clock = FakeClock()
        self.kernel = FakeKernel()
        self.core = Core(cfg, self.clock.monotonic())
        self.log: list[Output] = []
        self.rounds: dict[str, int] = {}  # the round each uplink was last asked for (IPv4)
        self.rounds6: dict[str, int] = {}  # and in IPv6

    def send(self, event: Event) -> list[Output]:
        """Feed `event` (its effect on the table first), carry out the commands, report
        each route added back to the core as the shell does; every command, in order."""
        match event:
            case RouteAppeared(route=route, replaced=True):
                self.kernel.replace(route)
            case RouteAppeared(route=route):
                self.kernel.routes.add(route)
            case RouteVanished(route=route):
                self.kernel.routes.discard(route)
        self.kernel.history.append((event, frozenset(self.kernel.routes)))
        return self.carry_out(self.core.handle(event, self.clock.monotonic()))

    def carry_out(self, decision: Decision) -> list[Output]:
        """Apply the decision's actions to the kernel, then the core's answers to what they
        reported; every report and action, each decision's reports before its actions."""
        done: list[Output] = []
        decisions = [decision]
        for _ in range(10):
            answers = []
            for each in decisions:
                done += [*each.reports, *each.actions]
                for action in each.actions:
                    if isinstance(action, StartProbe):
                        rounds = self.rounds6 if action.family is Family.IPV6 else self.rounds
                        rounds[action.uplink] = action.round_id
                    answer = self.kernel.apply(action)
                    if answer is not None:
                        answers.append(answer)
            if not answers:
                break
            decisions = [self.core.handle(a, self.clock.monotonic()) for a in answers]
        self.log += done
        return done

    def reconfigure(self, cfg: Config) -> list[Output]:
        return self.carry_out(self.core.reconfigure(cfg, self.clock.monotonic()))

    def link(self, ifname: str, carrier: bool = True, p2p: bool = False) -> list[Output]:
        event = LinkChanged(
            IFINDEX[ifname],
            ifname,
            carrier,
            True,
            p2p,
            "100.64.0.2",
            f"2001:db8:{IFINDEX[ifname]}::2",
        )
        return self.send(event)

    def unplug(self, ifname: str) -> list[Output]:
        return self.send(LinkVanished(IFINDEX[ifname], ifname))

    def capture(self, ifname: str, gateway: str | None, **kw: int) -> list[Output]:
        return self.send(RouteAppeared(dhcp_route(ifname, gateway, **kw)))

    def advance(self, seconds: float) -> list[Output]:
        self.clock.advance(seconds)
        return self.send(TimerFired())

    def finish(
        self, ifname: str, result: RoundResult | None = None, family: Family = Family.IPV4
    ) -> list[Output]:
        if family is Family.IPV6:
            done = result or round_result(target=TARGET6)
            return self.send(ProbeFinished(ifname, done, self.rounds6.get(ifname, 0), family))
        return self.send(
            ProbeFinished(ifname, result or round_result(), self.rounds.get(ifname, 0))
        )

    def fail(self, ifname: str) -> list[Output]:
        return self.finish(ifname, round_result(received=0))

    def probes(self, commands: list[Output] | None = None) -> list[StartProbe]:
        return [
            c for c in (self.log if commands is None else commands) if isinstance(c, StartProbe)
        ]

    def scripts(self, uplink: str | None = None) -> list[RunScript]:
        return [
            c
            for c in self.log
            if isinstance(c, RunScript) and (uplink is None or c.uplink == uplink)
        ]

    def transitions(self) -> list[tuple[str, str, str]]:
        return [
            (c.uplink, c.old.value, c.new.value) for c in self.log if isinstance(c, StateChanged)
        ]


# -- the ports, for the asyncio shell --------------------------------------------------


class FakeRouteTable:
    """Records route changes; serves a fixed table (links and routes), then waits."""

    def __init__(self, events: list[Event], refuse: set[Route] | None = None) -> None:
        self.links = [e for e in events if isinstance(e, LinkChanged)]
        self.routes = {e.route for e in events if isinstance(e, RouteAppeared)}
        self.refuse = refuse or set()
        self.calls: list[tuple[str, Route]] = []
        self.attempts: list[Route] = []
        self.closed = False

    async def snapshot(self, *, initial: bool = False) -> TableSnapshot:
        return TableSnapshot(tuple(self.links), tuple(self.routes), initial)

    async def events(self) -> AsyncIterator[Event | Resync]:
        yield Resync()
        await asyncio.Event().wait()

    async def install(self, route: Route) -> None:
        self.attempts.append(route)
        if route in self.refuse:
            raise RouteChangeFailed("Network is unreachable")
        self.calls.append(("install", route))
        self.routes.add(route)

    async def remove(self, route: Route) -> None:
        self.calls.append(("remove", route))
        self.routes.discard(route)

    async def delete_foreign(self, route: Route) -> None:
        self.calls.append(("delete", route))
        self.routes.discard(route)


class FakeProber:
    """Answers rounds from a script of results; raises when told to. Once the script is
    done its rounds pass, or (`then_hang`) never end, so that nothing changes after it."""

    def __init__(self, results: list[RoundResult | Exception], *, then_hang: bool = False) -> None:
        self.results = results
        self.rounds: list[StartProbe] = []
        self.then_hang = then_hang

    async def run_round(self, probe: StartProbe) -> RoundResult:
        self.rounds.append(probe)
        if self.then_hang and not self.results:
            await asyncio.Event().wait()
        result = self.results.pop(0) if self.results else round_result()
        if isinstance(result, Exception):
            raise result
        return result


class FakeScripts:
    def __init__(self) -> None:
        self.runs: list[RunScript] = []

    async def run(self, script: RunScript) -> int | None:
        self.runs.append(script)
        return 0


class FakeFlows:
    """Records what it is asked to end; ends a fixed number of each."""

    def __init__(self, conntrack: int = 0, sockets: int = 0) -> None:
        self.requests: list[EndFlows] = []
        self.checked = 0
        self.conntrack, self.sockets = conntrack, sockets

    async def check(self) -> None:
        self.checked += 1

    async def end(self, request: EndFlows) -> FlowsEnded:
        self.requests.append(request)
        return FlowsEnded(request.uplink, request.family, self.conntrack, self.sockets)


class RealClock:
    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()


class UntouchedRouteTable:
    """A route table that records every use; for start-ups that must touch no route."""

    def __init__(self) -> None:
        self.used: list[str] = []

    async def snapshot(self, *, initial: bool = False) -> TableSnapshot:
        self.used.append("snapshot")
        return TableSnapshot((), (), initial)

    async def events(self) -> AsyncIterator[Event | Resync]:
        self.used.append("events")
        return
        yield

    async def install(self, route: Route) -> None:
        self.used.append(f"install {route}")

    async def remove(self, route: Route) -> None:
        self.used.append(f"remove {route}")

    async def delete_foreign(self, route: Route) -> None:
        self.used.append(f"delete {route}")


class StuckProber:
    """Its rounds never end, unless cancelled (which it records)."""

    def __init__(self) -> None:
        self.rounds: list[StartProbe] = []
        self.cancelled: list[str | None] = []

    async def run_round(self, probe: StartProbe) -> RoundResult:
        self.rounds.append(probe)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(probe.gateway)
            raise
        raise AssertionError("unreachable")


class MemoryStore:
    """A state store in memory; `document` is what the file would hold."""

    def __init__(self, document: object | None = None, broken: str | None = None) -> None:
        self.document = document
        self.broken = broken
        self.writes = 0

    def read(self) -> object | None:
        if self.broken:
            raise StateError(self.broken)
        return self.document

    def write(self, document: dict[str, object]) -> None:
        self.document = document
        self.writes += 1


class FullDisk:
    """A state store on a disk with no space left."""

    def __init__(self) -> None:
        self.attempts = 0

    def read(self) -> object | None:
        return None

    def write(self, document: dict[str, object]) -> None:
        self.attempts += 1
        raise OSError(errno.ENOSPC, "No space left on device")


OPENED_TABLES: list[FakeRouteTable] = []  # every table closing_route_table opened


def closing_route_table() -> Iterator[FakeRouteTable]:
    """A fake route table as a resource (wan1 up with a DHCP lease): `closed` once the
    container shuts it down."""
    table = FakeRouteTable(
        [
            LinkChanged(2, "wan1", True, True, False, "100.64.1.2"),
            RouteAppeared(dhcp_route("wan1", "192.0.2.1")),
        ]
    )
    OPENED_TABLES.append(table)
    try:
        yield table
    finally:
        table.closed = True


class FakeAdapters(containers.DeclarativeContainer):
    """The adapters' container with fakes under the production providers' names: put in
    `Adapters`' place (`serve(config, FakeAdapters())`), it runs a whole daemon without a
    kernel. `route_table` is a resource, as in production, and says when it was closed."""

    clock = providers.Singleton(RealClock)
    route_table = providers.Resource(closing_route_table)
    prober = providers.Singleton(FakeProber, [])
    scripts = providers.Singleton(FakeScripts)
    router_adverts: providers.Object[None] = providers.Object(None)  # none heard
    flows = providers.Singleton(FakeFlows)
    state_store = providers.Factory(lambda path: MemoryStore() if path else None)
