"""Invariants of the core over random sequences of events (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pingu.domain.commands import (
    Command,
    DeleteRoute,
    InstallRoute,
    RemoveRoute,
    RoundJudged,
    StartProbe,
)
from pingu.domain.config import InitialState
from pingu.domain.events import (
    Event,
    LinkChanged,
    LinkVanished,
    ProbeFinished,
    RouteAppeared,
    RouteVanished,
    ScriptFinished,
    TimerFired,
)
from pingu.domain.model import Route
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
    if isinstance(event, ProbeFinished) and event.uplink in driver.core.uplinks:
        current = driver.core.uplinks[event.uplink].round_id
        stale = len(event.result.targets[0].delays_ms) == 4
        return ProbeFinished(event.uplink, event.result, current - 1 if stale else current)
    if isinstance(event, LinkVanished):
        gone = {r for r in driver.kernel.routes if r.ifindex == event.ifindex}
        driver.kernel.routes -= gone
    return event


def check_ownership(command: Command) -> None:
    if isinstance(command, DeleteRoute):
        route = command.route
        name = route.ifname or next(n for n, i in IFINDEX.items() if i == route.ifindex)
        assert route.proto != PROTO
        assert route.table == 254
        assert route.dst_len == 0
        assert name in CONFIGURED
    if isinstance(command, InstallRoute | RemoveRoute):
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
            installed = driver.core.uplinks[name].installed
            assert driver.kernel.own(name) == ([installed] if installed else [])
