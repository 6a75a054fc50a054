"""Invariants of the core over random sequences of events (hypothesis)."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pingu.domain.commands import (
    DeleteCapturedRoute,
    InstallOwnRoute,
    RemoveOwnRoute,
    StartProbe,
)
from pingu.domain.config import Config, InitialState, WhenAllDown
from pingu.domain.core import Output
from pingu.domain.events import (
    Event,
    LinkChanged,
    LinkVanished,
    ProbeFinished,
    RouteAppeared,
    RouteVanished,
    ScriptFinished,
    TableSnapshot,
    TimerFired,
)
from pingu.domain.model import Route
from pingu.domain.reports import (
    RoundJudged,
)
from tests.unit.fakes import IFINDEX, PROTO, Driver, config, round_result, uplink

CONFIGURED = ("wan1", "wan2", "ppp0")
NAMES = (*CONFIGURED, "eth9")
GATEWAYS = (None, "192.0.2.1", "192.0.2.2", "198.51.100.1")


@st.composite
def routes(draw: st.DrawFn) -> Route:
    name = draw(st.sampled_from(NAMES))
    gateway = draw(st.sampled_from(GATEWAYS))
    return Route(
        ifindex=IFINDEX[name],
        ifname=draw(st.sampled_from((name, None))),
        gateway=gateway,
        metric=draw(st.sampled_from((0, 100, 200, 300, 1024))),
        proto=draw(st.sampled_from((PROTO, 16, 3, 4, 9))),
        table=draw(st.sampled_from((254, 254, 254, 100))),
        dst_len=draw(st.sampled_from((0, 0, 0, 24))),
        scope=0 if gateway else 253,
    )


def results() -> st.SearchStrategy[ProbeFinished]:
    return st.builds(
        ProbeFinished,
        st.sampled_from(NAMES),
        st.builds(
            round_result,
            received=st.integers(0, 5),
            delay_ms=st.sampled_from((5.0, 2000.0)),
        ),
    )


def links() -> st.SearchStrategy[LinkChanged]:
    return st.builds(
        lambda name, carrier, admin: LinkChanged(IFINDEX[name], name, carrier, admin),
        st.sampled_from(NAMES),
        st.booleans(),
        st.sampled_from((True, True, True, False)),
    )


events = st.one_of(
    routes().map(RouteAppeared),
    routes().map(RouteVanished),
    links(),
    st.sampled_from(NAMES).map(lambda n: LinkVanished(IFINDEX[n], n)),
    results(),
    st.just(TimerFired()),
    st.sampled_from(CONFIGURED).map(lambda n: ScriptFinished(n, "/bin/true", 0)),
)

steps = st.lists(st.tuples(events, st.sampled_from((0.0, 0.5, 5.0, 61.0))), max_size=60)


def driver_for(rise: int, fall: int, initial: InitialState) -> Driver:
    uplinks = [
        uplink(name, metric, rise=rise, fall=fall, reset_script="/bin/true")
        for name, metric in zip(CONFIGURED, (100, 200, 300), strict=True)
    ]
    return Driver(config(*uplinks, initial=initial))


def consistent(driver: Driver, event: Event) -> Event:
    """Kernel facts: a vanished link takes its routes with it; results answer real rounds."""
    if isinstance(event, ProbeFinished) and event.uplink in driver.rounds:
        current = driver.rounds[event.uplink]
        stale = len(event.result.targets[0].delays_ms) == 4
        return ProbeFinished(event.uplink, event.result, current - 1 if stale else current)
    if isinstance(event, LinkVanished):
        gone = {r for r in driver.kernel.routes if r.ifindex == event.ifindex}
        driver.kernel.routes -= gone
    return event


def check_ownership(command: Output) -> None:
    if isinstance(command, DeleteCapturedRoute):
        route = command.route
        name = route.ifname or next(n for n, i in IFINDEX.items() if i == route.ifindex)
        assert route.proto != PROTO
        assert route.table == 254
        assert route.dst_len == 0
        assert name in CONFIGURED
    if isinstance(command, InstallOwnRoute | RemoveOwnRoute):
        assert command.route.proto == PROTO
        assert command.route.table == 254
        assert command.route.dst_len == 0


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    steps,
    st.integers(1, 3),
    st.integers(1, 3),
    st.sampled_from(list(InitialState)),
)
def test_invariants_hold_over_any_event_sequence(
    sequence: list[tuple[Event, float]], rise: int, fall: int, initial: InitialState
) -> None:
    driver = driver_for(rise, fall, initial)
    failed_in_a_row = dict.fromkeys(CONFIGURED, 0)
    for event, delay in sequence:
        driver.clock.advance(delay)
        commands = driver.send(consistent(driver, event))
        for command in commands:
            # pingu never deletes a route it does not own.
            check_ownership(command)
            if isinstance(command, RoundJudged):
                failed = failed_in_a_row[command.uplink] + 1
                failed_in_a_row[command.uplink] = 0 if command.passed else failed
        for name in CONFIGURED:
            own = driver.kernel.own(name)
            # A command sequence never leaves two pingu routes for one uplink.
            assert len(own) <= 1, own
            # An uplink whose last `fall` rounds failed has no route installed.
            if failed_in_a_row[name] >= fall:
                assert own == [], (name, own)
        # Never two rounds at once on one uplink.
        probing = [c.uplink for c in commands if isinstance(c, StartProbe)]
        assert len(probing) == len(set(probing))


@SETTINGS
@given(steps)
def test_core_view_of_its_routes_matches_the_table(sequence: list[tuple[Event, float]]) -> None:
    driver = driver_for(1, 1, InitialState.UP)
    for event, delay in sequence:
        driver.clock.advance(delay)
        driver.send(consistent(driver, event))
        for name in CONFIGURED:
            installed = driver.core.view().uplink(name).route
            assert driver.kernel.own(name) == ([installed] if installed else [])


# -- never without a default route while one is wanted ----------------------------------


class SilentDelete:
    """Someone deletes a route and pingu reads no notification of it (lost, or flushed)."""

    def __init__(self, pick: int) -> None:
        self.pick = pick


class Vanish:
    """A route of the table is deleted, with its notification."""

    def __init__(self, pick: int) -> None:
        self.pick = pick


class Snapshot:
    """The shell reads the whole table (periodic check, or after an overflow)."""


def leases() -> st.SearchStrategy[RouteAppeared]:
    """A DHCP/static client (re)installing a default route on a configured uplink, maybe
    with NLM_F_REPLACE."""
    return st.builds(
        lambda name, gateway, metric, proto, replaced: RouteAppeared(
            Route(
                IFINDEX[name],
                name,
                None if name == "ppp0" else gateway,
                metric,
                proto,
                scope=253 if name == "ppp0" else 0,
            ),
            replaced=replaced,
        ),
        st.sampled_from(CONFIGURED),
        st.sampled_from(GATEWAYS[1:]),
        st.sampled_from((100, 200, 300, 1024, 1025, 7)),
        st.sampled_from((16, 4, 3)),
        st.booleans(),
    )


def verdicts() -> st.SearchStrategy[ProbeFinished]:
    return st.builds(
        ProbeFinished,
        st.sampled_from(CONFIGURED),
        st.builds(round_result, received=st.sampled_from((0, 0, 2, 5, 5))),
    )


def carrier() -> st.SearchStrategy[LinkChanged]:
    return st.builds(
        lambda name, up: LinkChanged(IFINDEX[name], name, up, True, name == "ppp0", "100.64.0.2"),
        st.sampled_from(CONFIGURED),
        st.sampled_from((True, True, False)),
    )


table_steps = st.lists(
    st.tuples(
        st.one_of(
            verdicts(),
            verdicts(),
            carrier(),
            leases(),
            events,
            st.integers(0, 20).map(Vanish),
            st.integers(0, 20).map(SilentDelete),
            st.just(Snapshot()),
        ),
        st.sampled_from((0.0, 0.5, 5.0, 61.0)),
    ),
    max_size=50,
)


def has_default(table: frozenset[Route]) -> bool:
    return any(r.dst_len == 0 and r.table == 254 for r in table)


def started(when_all_down: WhenAllDown, fall: int) -> tuple[Driver, dict[str, LinkChanged]]:
    """Three uplinks up, each with its DHCP/PPP route captured."""
    uplinks = [
        uplink(name, metric, fall=fall, reset_script="/bin/true")
        for name, metric in zip(CONFIGURED, (100, 200, 300), strict=True)
    ]
    driver = Driver(Config(proto=PROTO, uplinks=tuple(uplinks), when_all_down=when_all_down))
    links = {}
    for name, gateway in zip(CONFIGURED, ("192.0.2.1", "198.51.100.1", None), strict=True):
        link = LinkChanged(IFINDEX[name], name, True, True, name == "ppp0", "100.64.0.2")
        links[name] = link
        driver.send(link)
        driver.capture(name, gateway, proto=3 if gateway is None else 16)
    return driver, links


def event_of(driver: Driver, step: object, links: dict[str, LinkChanged]) -> Event | None:
    """The event `step` stands for on the current table (None: it acts on the table only)."""
    table = sorted(driver.kernel.routes, key=repr)
    if isinstance(step, SilentDelete | Vanish):
        if not table:
            return None
        route = table[step.pick % len(table)]
        driver.kernel.routes.discard(route)
        return RouteVanished(route) if isinstance(step, Vanish) else None
    if isinstance(step, Snapshot):
        return TableSnapshot(tuple(links.values()), tuple(driver.kernel.routes))
    assert isinstance(step, Event.__args__)
    event = consistent(driver, step)
    if isinstance(event, LinkChanged):
        links[event.ifname] = event
    elif isinstance(event, LinkVanished):
        links.pop(event.ifname, None)
    return event


@SETTINGS
@given(table_steps, st.sampled_from(list(WhenAllDown)), st.integers(1, 2))
def test_never_without_a_default_route_while_one_is_wanted(
    sequence: list[tuple[object, float]], when_all_down: WhenAllDown, fall: int
) -> None:
    """Replaying each event's commands (and the reports of routes added) on a fake table:
    while an uplink is wanted before and after the event, no command in between takes the
    table's last default route away; and after it, every wanted route is in the table
    (after a silent deletion: from the next full read of the table on)."""
    driver, links = started(when_all_down, fall)
    unseen = False  # a silent deletion pingu cannot know of until it reads the table again
    for step, delay in sequence:
        driver.clock.advance(delay)
        event = event_of(driver, step, links)
        unseen = (unseen or isinstance(step, SilentDelete)) and not isinstance(step, Snapshot)
        if event is None or unseen:
            if event is not None:
                driver.send(event)
            continue
        wanted_before = bool(driver.core.desired_routes())
        start = len(driver.kernel.history)
        driver.send(event)
        wanted_after = driver.core.desired_routes()
        tables = [table for _, table in driver.kernel.history[start:]]
        if wanted_before and wanted_after:
            for before, after in itertools.pairwise(tables):
                assert has_default(after) or not has_default(before), (
                    event,
                    driver.kernel.history[start:],
                )
        for route in wanted_after:
            assert route in driver.kernel.routes, (route, event)
