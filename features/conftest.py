"""Steps shared by every feature: the operator's words bound to the core and its fakes.

Each scenario gets its own `Driver` (fake clock, fake table main) from its first step;
every step that feeds the core an event publishes the commands it returned as `commands`,
and the `then` steps assert on those commands and on the routes left in the fake table.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterable
from typing import TypeVar

from parse import with_pattern
from pytest_bdd import given, parsers, then, when

from pingu.domain.commands import (
    DeleteCapturedRoute,
    EndFlows,
    InstallOwnRoute,
    RemoveOwnRoute,
    RunScript,
    StartProbe,
)
from pingu.domain.config import InitialState, UplinkConfig
from pingu.domain.core import Output
from pingu.domain.events import RouteAppeared, RouterAdvertised, RouteVanished, ScriptFinished
from pingu.domain.model import (
    MAIN_TABLE,
    SCOPE_LINK,
    SCOPE_UNIVERSE,
    Family,
    RoundResult,
    Route,
    TargetResult,
)
from pingu.domain.reports import (
    RoundJudged,
    RouteCaptured,
    StateChanged,
)
from tests.unit.fakes import IFINDEX, PROTO, TARGET6, Driver, config, round_result, uplink

# -- the operator's words --------------------------------------------------------------

PROTOCOLS = {"pingu": PROTO, "kernel": 2, "boot": 3, "static": 4, "ra": 9, "dhcp": 16}
TABLES = {"main": MAIN_TABLE, "default": 253, "local": 255}
SCOPES = {"global": SCOPE_UNIVERSE, "universe": SCOPE_UNIVERSE, "link": SCOPE_LINK}
ROUTE_ATTRIBUTES = ("via", "dev", "table", "proto", "scope", "metric")
DHCP_METRIC = 1024
RA_LIFETIME_S = 1800.0  # what the kernel's route of a router advertisement has left
C = TypeVar("C")
T = TypeVar("T")


def _named(value: str, names: dict[str, int]) -> int:
    return names[value] if value in names else int(value)


def parse_route(text: str) -> Route:
    """A route in iproute2's words: `default via 192.0.2.1 dev wan1 proto dhcp metric 1024`."""
    destination, *words = text.split()
    if len(words) % 2:
        raise ValueError(f"route {text!r}: every attribute needs a value")
    attributes = dict(zip(words[::2], words[1::2], strict=True))
    unknown = sorted(set(attributes) - set(ROUTE_ATTRIBUTES))
    if unknown or "dev" not in attributes:
        raise ValueError(f"route {text!r}: needs dev, knows only {', '.join(ROUTE_ATTRIBUTES)}")
    device = attributes["dev"]
    if device not in IFINDEX:
        raise ValueError(f"route {text!r}: the fake kernel has only {', '.join(IFINDEX)}")
    gateway = attributes.get("via")
    prefix = 0 if destination == "default" else ipaddress.ip_network(destination).prefixlen
    default_scope = "global" if gateway else "link"
    family = Family.IPV6 if gateway and ":" in gateway else Family.IPV4
    return Route(
        ifindex=IFINDEX[device],
        ifname=device,
        gateway=gateway,
        metric=int(attributes.get("metric", "0")),
        proto=_named(attributes.get("proto", "boot"), PROTOCOLS),
        table=_named(attributes.get("table", "main"), TABLES),
        dst_len=prefix,
        scope=SCOPES[attributes.get("scope", default_scope)],
        family=family,
        expires=RA_LIFETIME_S if attributes.get("proto") == "ra" else None,
    )


def _field(pattern: str, convert: Callable[[str], T]) -> Callable[[str], T]:
    """A field type for step patterns: text matching `pattern`, passed through `convert`."""
    typed: Callable[[str], T] = with_pattern(pattern)(convert)
    return typed


FIELDS = {
    "Word": _field(r"[\w.:-]+", lambda text: text),  # an uplink, an address, a state
    "Path": _field(r"/\S+", lambda text: text),  # a script
    "Route": _field(r'[^"]+', parse_route),  # a route in iproute2's words, between quotes
}


def step(text: str) -> parsers.parse:
    """A step pattern that knows the field types `Word`, `Path` and `Route`."""
    return parsers.parse(text, extra_types=FIELDS)


def _name_of(number: int, names: dict[str, int]) -> str:
    return next((name for name, value in names.items() if value == number), str(number))


def show_route(route: Route) -> str:
    """The route the way `ip route` prints it (a prefix shows only its length)."""
    words = ["default" if route.is_default else f"<prefix>/{route.dst_len}"]
    if route.gateway:
        words += ["via", route.gateway]
    words += ["dev", route.ifname or f"#{route.ifindex}"]
    if route.table != MAIN_TABLE:
        words += ["table", _name_of(route.table, TABLES)]
    words += ["proto", _name_of(route.proto, PROTOCOLS)]
    if route.scope == SCOPE_LINK:
        words += ["scope", "link"]
    words += ["metric", str(route.metric)]
    return " ".join(words)


def show_table(driver: Driver) -> str:
    return "\n".join(sorted(show_route(r) for r in driver.kernel.routes)) or "(empty)"


def _unit(value: str, unit: str) -> float:
    return float(value.strip().removesuffix(unit).strip())


COLUMNS: dict[str, tuple[str, Callable[[str], object]]] = {
    "host": ("targets", lambda cell: tuple(t.strip() for t in cell.split(","))),
    "min_hosts_up": ("min_hosts_up", int),
    "count": ("count", int),
    "max_lost": ("max_lost", int),
    "max_delay": ("max_delay_ms", lambda cell: _unit(cell, "ms")),
    "period": ("period", lambda cell: _unit(cell, "s")),
    "rise": ("rise", int),
    "fall": ("fall", int),
    "reset_script": ("reset_script", str),
    "reset_script_grace_period": ("reset_script_grace_period", lambda cell: _unit(cell, "s")),
    "up_script": ("up_script", str),
    "down_script": ("down_script", str),
}


def uplinks_from(datatable: list[list[str]]) -> list[UplinkConfig]:
    """One uplink per row; `uplink` and `metric` are required, an empty cell is the default."""
    header, *rows = datatable
    uplinks = []
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        settings = {
            COLUMNS[key][0]: COLUMNS[key][1](cell)
            for key, cell in cells.items()
            if key not in ("uplink", "metric") and cell.strip()
        }
        uplinks.append(uplink(cells["uplink"], int(cells["metric"]), **settings))
    return uplinks


def _of_type(commands: Iterable[Output], kind: type[C]) -> list[C]:
    return [c for c in commands if isinstance(c, kind)]


def _index(commands: list[Output], wanted: Output) -> int:
    assert wanted in commands, f"expected {wanted} among:\n" + "\n".join(map(str, commands))
    return commands.index(wanted)


def _split_addresses(text: str) -> list[str]:
    return [a.strip() for a in text.replace(" and ", ",").split(",") if a.strip()]


# -- given: the configuration ----------------------------------------------------------


@given(step("pingu runs with the uplinks:"), target_fixture="driver")
def pingu_runs(datatable: list[list[str]]) -> Driver:
    return Driver(config(*uplinks_from(datatable)))


@given(step("pingu runs with initial_state {state:Word} and the uplinks:"), target_fixture="driver")
def pingu_runs_starting(state: str, datatable: list[list[str]]) -> Driver:
    return Driver(config(*uplinks_from(datatable), initial=InitialState(state)))


# -- given/when: what happens on the links and in the table ----------------------------


@given(step("the link {name:Word} is up"), target_fixture="commands")
@when(step("the link {name:Word} is up"), target_fixture="commands")
def link_up(driver: Driver, name: str) -> list[Output]:
    return driver.link(name)


@given(step("the point-to-point link {name:Word} is up"), target_fixture="commands")
@when(step("the point-to-point link {name:Word} is up"), target_fixture="commands")
def p2p_link_up(driver: Driver, name: str) -> list[Output]:
    return driver.link(name, p2p=True)


@given(step("{name:Word} loses its carrier"), target_fixture="commands")
@when(step("{name:Word} loses its carrier"), target_fixture="commands")
def carrier_lost(driver: Driver, name: str) -> list[Output]:
    return driver.link(name, carrier=False, p2p=driver.core.view().uplink(name).link.point_to_point)


@given(step("{name:Word} gets its carrier back"), target_fixture="commands")
@when(step("{name:Word} gets its carrier back"), target_fixture="commands")
def carrier_back(driver: Driver, name: str) -> list[Output]:
    return driver.link(name, carrier=True, p2p=driver.core.view().uplink(name).link.point_to_point)


@given(step('the route "{route:Route}" appears'), target_fixture="commands")
@when(step('the route "{route:Route}" appears'), target_fixture="commands")
def route_appears(driver: Driver, route: Route) -> list[Output]:
    return driver.send(RouteAppeared(route))


@given(step('the DHCP client of {name:Word} installs "{route:Route}"'), target_fixture="commands")
@when(step('the DHCP client of {name:Word} installs "{route:Route}"'), target_fixture="commands")
def dhcp_installs(driver: Driver, name: str, route: Route) -> list[Output]:
    assert route.ifname == name, f"the DHCP client of {name} installs routes on {name} only"
    return driver.send(RouteAppeared(route))


@given(
    step("{name:Word} is up with a DHCP lease via {gateway:Word} and a router at {router:Word}"),
    target_fixture="commands",
)
def up_with_lease_and_router(driver: Driver, name: str, gateway: str, router: str) -> list[Output]:
    advertised = f"default via {router} dev {name} proto ra metric {DHCP_METRIC}"
    return up_with_lease(driver, name, gateway) + driver.send(
        RouteAppeared(parse_route(advertised))
    )


@when(
    step('the next advertisement of {router:Word} puts "{route:Route}" back'),
    target_fixture="commands",
)
def advertisement_puts_back(driver: Driver, router: str, route: Route) -> list[Output]:
    assert route.gateway == router, f"{route} is not the route of router {router}"
    return driver.send(RouteAppeared(route))


@when(
    step("{name:Word}'s router {router:Word} advertises itself for {lifetime:d} seconds"),
    target_fixture="commands",
)
def router_advertises(driver: Driver, name: str, router: str, lifetime: int) -> list[Output]:
    return driver.send(RouterAdvertised(IFINDEX[name], router, lifetime))


@when(
    step(
        "{name:Word}'s router {router:Word} advertises itself for {lifetime:d} seconds"
        " after {seconds:g} seconds"
    ),
    target_fixture="commands",
)
def router_advertises_later(
    driver: Driver, name: str, router: str, lifetime: int, seconds: float
) -> list[Output]:
    driver.clock.advance(seconds)
    return driver.send(RouterAdvertised(IFINDEX[name], router, lifetime))


@when(
    step("{seconds:g} seconds pass without an advertisement from {router:Word}"),
    target_fixture="commands",
)
def no_advertisement(driver: Driver, seconds: float, router: str) -> list[Output]:
    return driver.advance(seconds)


@given(step("{name:Word} is up with a DHCP lease via {gateway:Word}"), target_fixture="commands")
def up_with_lease(driver: Driver, name: str, gateway: str) -> list[Output]:
    lease = f"default via {gateway} dev {name} proto dhcp metric {DHCP_METRIC}"
    return driver.link(name) + driver.send(RouteAppeared(parse_route(lease)))


# -- given/when: rounds, time and scripts ----------------------------------------------


def _round_in_progress(driver: Driver, name: str) -> None:
    assert driver.core.view().uplink(name).round_running, f"no round is in progress on {name}"


def _answer(driver: Driver, name: str, result: RoundResult) -> list[Output]:
    _round_in_progress(driver, name)
    return driver.finish(name, result)


@given(step("the IPv6 round on {name:Word} fails"), target_fixture="commands")
@when(step("the IPv6 round on {name:Word} fails"), target_fixture="commands")
def ipv6_round_fails(driver: Driver, name: str) -> list[Output]:
    assert driver.core.view().uplink(name).path(Family.IPV6).round_running, name
    return driver.finish(name, round_result(received=0, target=TARGET6), Family.IPV6)


@given(step("the round on {name:Word} passes"), target_fixture="commands")
@when(step("the round on {name:Word} passes"), target_fixture="commands")
def round_passes(driver: Driver, name: str) -> list[Output]:
    return _answer(driver, name, round_result())


@given(step("the round on {name:Word} fails"), target_fixture="commands")
@when(step("the round on {name:Word} fails"), target_fixture="commands")
def round_fails(driver: Driver, name: str) -> list[Output]:
    return _answer(driver, name, round_result(received=0))


@when(
    step(
        "the round on {name:Word} gets {received:d} of {sent:d} echoes back,"
        " {delay:g} ms on average"
    ),
    target_fixture="commands",
)
def round_measured(
    driver: Driver, name: str, received: int, sent: int, delay: float
) -> list[Output]:
    return _answer(driver, name, round_result(sent=sent, received=received, delay_ms=delay))


@given(step("the round on {name:Word} gets no echo back from {silent}"), target_fixture="commands")
@when(step("the round on {name:Word} gets no echo back from {silent}"), target_fixture="commands")
def round_with_silent_targets(driver: Driver, name: str, silent: str) -> list[Output]:
    """Every target answers all its echoes in 10 ms, except the silent ones."""
    settings = driver.core.config.uplink(name)
    assert settings is not None
    quiet = _split_addresses(silent)
    assert set(quiet) <= set(settings.targets), f"{quiet} are not all targets of {name}"
    results = tuple(
        TargetResult(t, settings.count, 0)
        if t in quiet
        else TargetResult(t, settings.count, settings.count, (10.0,) * settings.count)
        for t in settings.targets
    )
    return _answer(driver, name, RoundResult(results))


@given(step("{seconds:g} seconds pass"), target_fixture="commands")
@when(step("{seconds:g} seconds pass"), target_fixture="commands")
@when(step("{seconds:g} second passes"), target_fixture="commands")
def time_passes(driver: Driver, seconds: float) -> list[Output]:
    return driver.advance(seconds)


@given(step("the reset script of {name:Word} ends"), target_fixture="commands")
@when(step("the reset script of {name:Word} ends"), target_fixture="commands")
def script_ends(driver: Driver, name: str) -> list[Output]:
    settings = driver.core.config.uplink(name)
    assert settings is not None
    script = settings.reset_script
    assert script is not None, f"{name} has no reset script"
    return driver.send(ScriptFinished(name, script, 0))


# -- then: the table --------------------------------------------------------------------


@then(step('the table holds "{route:Route}"'))
@then(step('the table still holds "{route:Route}"'))
def table_holds(driver: Driver, route: Route) -> None:
    assert route in driver.kernel.routes, f"table main:\n{show_table(driver)}"


@then(step('the table does not hold "{route:Route}"'))
def table_lacks(driver: Driver, route: Route) -> None:
    assert route not in driver.kernel.routes, f"table main:\n{show_table(driver)}"


@then(step("the default routes in the table are:"))
def default_routes_are(driver: Driver, docstring: str) -> None:
    expected = {parse_route(line) for line in docstring.splitlines() if line.strip()}
    assert set(driver.kernel.defaults()) == expected, f"table main:\n{show_table(driver)}"


@then(step("the table holds no default route"))
def no_default_route(driver: Driver) -> None:
    assert not driver.kernel.defaults(), f"table main:\n{show_table(driver)}"


@then(step("the DHCP route of {name:Word} is gone"))
def dhcp_route_gone(driver: Driver, name: str) -> None:
    left = [r for r in driver.kernel.routes if r.ifname == name and r.proto == PROTOCOLS["dhcp"]]
    assert not left, f"table main:\n{show_table(driver)}"


@then(step("the DHCP route is gone"))
def every_dhcp_route_gone(driver: Driver) -> None:
    left = [r for r in driver.kernel.defaults() if r.proto == PROTOCOLS["dhcp"]]
    assert not left, f"table main:\n{show_table(driver)}"


# -- then: the commands ------------------------------------------------------------------


@then(step('pingu installs "{route:Route}"'))
def installs(commands: list[Output], route: Route) -> None:
    _index(commands, InstallOwnRoute(route))


@then(step('pingu removes "{route:Route}"'))
def removes(commands: list[Output], route: Route) -> None:
    _index(commands, RemoveOwnRoute(route))


@then(step('pingu installs "{new:Route}" before it deletes "{captured:Route}"'))
def installs_before_delete(commands: list[Output], new: Route, captured: Route) -> None:
    install = _index(commands, InstallOwnRoute(new))
    assert install < _index(commands, DeleteCapturedRoute(captured)), commands


@then(step('pingu installs "{new:Route}" before it removes "{old:Route}"'))
def installs_before_remove(commands: list[Output], new: Route, old: Route) -> None:
    install = _index(commands, InstallOwnRoute(new))
    assert install < _index(commands, RemoveOwnRoute(old)), commands


@then(step("{name:Word} is captured with gateway {gateway:Word}"))
def captured_with(commands: list[Output], name: str, gateway: str) -> None:
    captures = [c for c in _of_type(commands, RouteCaptured) if c.uplink == name]
    assert [c.route.gateway for c in captures] == [gateway], commands


@then(step("{name:Word} is captured without a gateway"))
def captured_without(commands: list[Output], name: str) -> None:
    captures = [c for c in _of_type(commands, RouteCaptured) if c.uplink == name]
    assert [c.route.gateway for c in captures] == [None], commands


@then(step("no route is installed, removed or deleted"))
def table_untouched(commands: list[Output]) -> None:
    changes = [
        c for c in commands if isinstance(c, InstallOwnRoute | RemoveOwnRoute | DeleteCapturedRoute)
    ]
    assert not changes, changes


@then(step('no command touches "{route:Route}"'))
def never_touched(driver: Driver, route: Route) -> None:
    touching = [c for c in driver.log if getattr(c, "route", None) == route]
    assert not touching, touching


@then(step("a round starts on {name:Word} through {gateway:Word}"))
def round_starts_through(commands: list[Output], name: str, gateway: str) -> None:
    probes = [p for p in _of_type(commands, StartProbe) if p.uplink == name]
    assert [p.gateway for p in probes] == [gateway], commands


@then(step("a round starts on {name:Word} without a gateway"))
def round_starts_gatewayless(commands: list[Output], name: str) -> None:
    probes = [p for p in _of_type(commands, StartProbe) if p.uplink == name]
    assert [(p.gateway, p.point_to_point) for p in probes] == [(None, True)], commands


@then(step("a round starts on {name:Word}"))
def round_starts(commands: list[Output], name: str) -> None:
    assert [p.uplink for p in _of_type(commands, StartProbe)] == [name], commands


@then(step("no round starts"))
def no_round(commands: list[Output]) -> None:
    assert not _of_type(commands, StartProbe), commands


@then(step("the echoes of that round go to {targets}"))
def round_targets(commands: list[Output], targets: str) -> None:
    (probe,) = _of_type(commands, StartProbe)
    assert list(probe.targets) == _split_addresses(targets), probe


@then(step("the verdict on {name:Word} is {verdict:Word}"))
def verdict_is(commands: list[Output], name: str, verdict: str) -> None:
    verdicts = [v for v in _of_type(commands, RoundJudged) if v.uplink == name]
    assert [v.passed for v in verdicts] == [verdict == "pass"], commands


@then(step('the verdict on {name:Word} is {verdict:Word}: "{detail}"'))
def verdict_is_because(commands: list[Output], name: str, verdict: str, detail: str) -> None:
    verdicts = [v for v in _of_type(commands, RoundJudged) if v.uplink == name]
    assert [v.passed for v in verdicts] == [verdict == "pass"], commands
    assert detail in verdicts[0].reason, verdicts[0].reason


def _changes(commands: list[Output], name: str, family: Family) -> list[tuple[str, str]]:
    return [
        (c.old.value, c.new.value)
        for c in _of_type(commands, StateChanged)
        if c.uplink == name and c.family is family
    ]


@then(step("{name:Word}'s IPv6 goes from {old:Word} to {new:Word}"))
def ipv6_goes_from_to(commands: list[Output], name: str, old: str, new: str) -> None:
    assert _changes(commands, name, Family.IPV6) == [(old, new)], commands


@then(step("no state of {name:Word}'s IPv6 changes"))
def ipv6_unchanged(commands: list[Output], name: str) -> None:
    assert _changes(commands, name, Family.IPV6) == [], commands


@then(step("the verdict on {name:Word}'s IPv6 is {verdict:Word}"))
def ipv6_verdict_is(commands: list[Output], name: str, verdict: str) -> None:
    verdicts = [
        v for v in _of_type(commands, RoundJudged) if v.uplink == name and v.family is Family.IPV6
    ]
    assert [v.passed for v in verdicts] == [verdict == "pass"], commands


@then(step("{name:Word}'s IPv6 is captured again with gateway {gateway:Word}"))
def ipv6_captured_again(commands: list[Output], name: str, gateway: str) -> None:
    captures = [
        c
        for c in _of_type(commands, RouteCaptured)
        if c.uplink == name and c.route.family is Family.IPV6
    ]
    assert [(c.route.gateway, c.gateway_changed) for c in captures] == [(gateway, False)]


@then(step("no route of pingu is installed or removed"))
def no_own_route_change(commands: list[Output]) -> None:
    assert not _of_type(commands, InstallOwnRoute), commands
    assert not _of_type(commands, RemoveOwnRoute), commands


@then(step('pingu deletes "{route:Route}"'))
def deletes(commands: list[Output], route: Route) -> None:
    _index(commands, DeleteCapturedRoute(route))


@then(step("{name:Word} goes from {old:Word} to {new:Word}"))
def goes_from_to(commands: list[Output], name: str, old: str, new: str) -> None:
    changes = _changes(commands, name, Family.IPV4)
    assert changes == [(old, new)], commands


@then(step("the health of {name:Word} is {health:Word}"))
def health_is(driver: Driver, name: str, health: str) -> None:
    assert driver.core.view().uplink(name).health.value == health


# -- then: the reset script --------------------------------------------------------------


def _scripts_of(commands: list[Output], name: str) -> list[RunScript]:
    return [s for s in _of_type(commands, RunScript) if s.uplink == name]


@then(step("the reset script {script:Path} of {name:Word} runs"))
def script_runs(commands: list[Output], script: str, name: str) -> None:
    assert [s.script for s in _scripts_of(commands, name)] == [script], commands


@then(step('the reset script of {name:Word} runs with reason "{reason}"'))
def script_runs_because(commands: list[Output], name: str, reason: str) -> None:
    (run,) = _scripts_of(commands, name)
    assert run.reason == reason
    assert ("PINGU_REASON", reason) in run.env, run.env


@then(step("no script runs"))
def no_script(commands: list[Output]) -> None:
    assert not _of_type(commands, RunScript), commands


@then(step("pingu removes the route of {name:Word} before the reset script starts"))
def removed_before_script(driver: Driver, commands: list[Output], name: str) -> None:
    removals = [
        i
        for i, c in enumerate(commands)
        if isinstance(c, RemoveOwnRoute) and c.route.ifname == name
    ]
    scripts = [i for i, c in enumerate(commands) if isinstance(c, RunScript) and c.uplink == name]
    assert removals, commands
    assert scripts, commands
    assert removals[-1] < scripts[0], commands
    assert not driver.kernel.own(name)


# -- traffic that follows the route ----------------------------------------------------


def _ended(commands: list[Output]) -> list[EndFlows]:
    return [c for c in commands if isinstance(c, EndFlows)]


@given(step("every uplink has a flow_quiet_period of {seconds:g} s"), target_fixture="commands")
def quiet_period(driver: Driver, seconds: float) -> list[Output]:
    cfg = driver.core.config
    uplinks = tuple(dataclasses.replace(u, flow_quiet_period=seconds) for u in cfg.uplinks)
    return driver.reconfigure(dataclasses.replace(cfg, uplinks=uplinks))


@given(step("{name:Word} has {switches} off"), target_fixture="commands")
def flows_off(driver: Driver, name: str, switches: str) -> list[Output]:
    off = switches.split(" and ")
    assert set(off) <= {"flush_conntrack", "kill_sockets"}, switches
    cfg = driver.core.config

    def turned_off(u: UplinkConfig) -> UplinkConfig:
        return dataclasses.replace(
            u,
            flush_conntrack=u.flush_conntrack and "flush_conntrack" not in off,
            kill_sockets=u.kill_sockets and "kill_sockets" not in off,
        )

    uplinks = tuple(turned_off(u) if u.name == name else u for u in cfg.uplinks)
    return driver.reconfigure(dataclasses.replace(cfg, uplinks=uplinks))


@when(step('someone deletes "{route:Route}"'), target_fixture="commands")
def someone_deletes(driver: Driver, route: Route) -> list[Output]:
    return driver.send(RouteVanished(route))


@then(step("pingu ends the flows of {name:Word}, now via {other:Word}"))
@then(step("pingu ends the flows of {name:Word}, now via {other:Word}, after {waited:g} s"))
def ends_flows(commands: list[Output], name: str, other: str, waited: float = 0.0) -> None:
    ended = [e for e in _ended(commands) if e.uplink == name]
    assert len(ended) == 1, f"flows of {name} ended {len(ended)} times: {_ended(commands)}"
    assert (ended[0].now_via, ended[0].waited_s) == (other, waited), ended[0]
    assert ended[0].addresses == ("100.64.0.2",)  # the uplink's address, as the link said


@then(step("pingu ends the flows of {name:Word}, with no route left"))
def ends_flows_no_route(commands: list[Output], name: str) -> None:
    ended = [e for e in _ended(commands) if e.uplink == name]
    assert [e.now_via for e in ended] == [None], _ended(commands)


@then(step('pingu {verb:Word} "{route:Route}" before it ends them'))
def route_change_before_ending(commands: list[Output], verb: str, route: Route) -> None:
    kind = {"installs": InstallOwnRoute, "removes": RemoveOwnRoute}[verb]
    change = next(
        i
        for i, c in enumerate(commands)
        if isinstance(c, InstallOwnRoute | RemoveOwnRoute)
        and isinstance(c, kind)
        and c.route == route
    )
    end = next(i for i, c in enumerate(commands) if isinstance(c, EndFlows))
    assert change < end, commands


@then(step("pingu ends no flows"))
def ends_no_flows(commands: list[Output]) -> None:
    assert _ended(commands) == []


@then(step("the flows of {name:Word} are not ended"))
def flows_not_ended(commands: list[Output], name: str) -> None:
    assert [e for e in _ended(commands) if e.uplink == name] == []


@then(step("only their conntrack entries are deleted"))
def only_conntrack(commands: list[Output]) -> None:
    assert [(e.conntrack, e.sockets) for e in _ended(commands)] == [(True, False)]


# -- the history: event ids and the rings -----------------------------------------------


@then(step("{name:Word} goes from {old:Word} to {new:Word} as event {event_id:d}"))
def goes_from_to_as(commands: list[Output], name: str, old: str, new: str, event_id: int) -> None:
    changes = [c for c in _of_type(commands, StateChanged) if c.uplink == name]
    assert [(c.old.value, c.new.value, c.event_id) for c in changes] == [(old, new, event_id)]


@then(step("the {kinds} script of {name:Word} runs for event {event_id:d}"))
@then(step("the {kinds} scripts of {name:Word} run for event {event_id:d}"))
def scripts_run_for(commands: list[Output], kinds: str, name: str, event_id: int) -> None:
    runs = _scripts_of(commands, name)
    assert [s.kind.value for s in runs] == kinds.split(" and "), runs
    assert [(s.event_id, dict(s.env)["PINGU_EVENT_ID"]) for s in runs] == [
        (event_id, str(event_id))
    ] * len(runs)


@then(step('the history of {name:Word} tells event {event_id:d}: {change}, "{did}"'))
def history_tells(driver: Driver, name: str, event_id: int, change: str, did: str) -> None:
    events = driver.core.view().uplink(name).first.events
    (event,) = [e for e in events if e.id == event_id]
    assert f"{event.old.value} -> {event.new.value}" == change
    assert ", ".join(event.changed) == did


@when(step("{count:d} rounds on {name:Word} fail and pass by turns"), target_fixture="commands")
def rounds_by_turns(driver: Driver, count: int, name: str) -> list[Output]:
    done: list[Output] = []
    settings = driver.core.config.uplink(name)
    assert settings is not None
    for number in range(count):
        done += _answer(driver, name, round_result(received=5 if number % 2 else 0))
        done += driver.advance(settings.period)
    return done


@then(step("the history of {name:Word} holds its last {count:d} rounds"))
def history_holds_rounds(driver: Driver, name: str, count: int) -> None:
    rounds = driver.core.view().uplink(name).first.rounds
    assert len(rounds) == count
    settings = driver.core.config.uplink(name)
    assert settings is not None
    assert rounds[-1].at == driver.clock.now - settings.period  # the newest are the ones kept


@then(step("the history of {name:Word} holds the state changes {first:d} to {last:d}"))
def history_holds_changes(driver: Driver, name: str, first: int, last: int) -> None:
    events = driver.core.view().uplink(name).first.events
    assert [e.id for e in events] == list(range(first, last + 1))
