"""The core's hooks, last resort, reload and restart-state rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pingu.domain.commands import (
    InstallOwnRoute,
    RemoveOwnRoute,
    RestoreCapturedRoute,
    RunScript,
    ScriptKind,
)
from pingu.domain.config import Config, WhenAllDown
from pingu.domain.events import (
    LinkChanged,
    RouteAppeared,
    RouteVanished,
    ScriptFinished,
    TableSnapshot,
)
from pingu.domain.health import Health
from pingu.domain.model import Family, Lease, Route, RouteAttributes
from pingu.domain.reports import (
    LastResort,
    RouteCaptured,
    TableRepaired,
)
from pingu.domain.state import SavedUplink, parse_state, state_document
from tests.unit.fakes import PROTO, TARGET, TARGET6, Driver, dhcp_route, round_result, uplink
from tests.unit.test_core import GW1, GW2, own

UP_SH = "/usr/local/sbin/wan-up"
DOWN_SH = "/usr/local/sbin/wan-down"


def driver_for(cfg: Config) -> Driver:
    driver = Driver(cfg)
    for u in cfg.uplinks:
        driver.link(u.name)
    return driver


def two(when_all_down: WhenAllDown = WhenAllDown.NONE, **settings: object) -> Driver:
    cfg = Config(
        proto=PROTO,
        uplinks=(uplink("wan1", 100, **settings), uplink("wan2", 200, **settings)),
        when_all_down=when_all_down,
        script_timeout=7.0,
    )
    driver = driver_for(cfg)
    driver.capture("wan1", GW1)
    driver.capture("wan2", GW2)
    return driver


def last_resorts(commands: Sequence[object]) -> list[LastResort]:
    return [c for c in commands if isinstance(c, LastResort)]


# -- up/down hooks ------------------------------------------------------------------------


def test_down_and_up_hooks_run_after_the_route_change() -> None:
    driver = two(up_script=UP_SH, down_script=DOWN_SH)
    down = driver.fail("wan1")
    kinds = [type(c) for c in down if isinstance(c, RemoveOwnRoute | RunScript)]
    assert kinds == [RemoveOwnRoute, RunScript]
    (hook,) = driver.scripts("wan1")
    assert (hook.kind.value, hook.script, hook.timeout_s) == ("down", DOWN_SH, 7.0)
    env = dict(hook.env)
    assert env["PINGU_EVENT"] == "down"
    assert (env["PINGU_STATE"], env["PINGU_OLD_STATE"]) == ("down", "up")
    assert (env["PINGU_GATEWAY"], env["PINGU_METRIC"], env["PINGU_LOSS"]) == (GW1, "100", "5/5")

    driver.advance(5.0)
    up = driver.finish("wan1")
    assert [type(c) for c in up if isinstance(c, InstallOwnRoute | RunScript)] == [
        InstallOwnRoute,
        RunScript,
    ]
    assert [s.kind.value for s in driver.scripts("wan1")] == ["down", "up"]


def test_hooks_follow_the_route_not_the_counting_states() -> None:
    driver = two(up_script=UP_SH, down_script=DOWN_SH, fall=2, rise=2)
    rounds = iter(["fail", "pass", "fail", "fail", "pass", "pass"])

    def next_round() -> None:
        driver.advance(5.0)
        driver.finish("wan1", round_result(received=5 if next(rounds) == "pass" else 0))

    next_round()  # up -> failing: still routed, no hook
    next_round()  # failing -> up
    assert driver.scripts("wan1") == []
    next_round()
    next_round()  # failing -> down
    next_round()  # down -> rising: not routed yet
    assert [s.kind.value for s in driver.scripts("wan1")] == ["down"]
    next_round()
    assert [s.kind.value for s in driver.scripts("wan1")] == ["down", "up"]


def test_a_hook_ending_does_not_release_the_reset_script_guard() -> None:
    driver = two(reset_script="/sbin/reset", reset_script_grace_period=0.0, down_script=DOWN_SH)
    driver.fail("wan1")
    assert [s.kind.value for s in driver.scripts("wan1")] == ["down", "reset"]
    driver.send(ScriptFinished("wan1", DOWN_SH, 0, kind=ScriptKind.DOWN))
    driver.advance(5.0)
    driver.fail("wan1")
    assert [s.kind.value for s in driver.scripts("wan1")] == [
        "down",
        "reset",
    ]  # reset still running
    driver.send(ScriptFinished("wan1", "/sbin/reset", 0))
    driver.advance(5.0)
    driver.fail("wan1")
    assert [s.kind.value for s in driver.scripts("wan1")] == ["down", "reset", "reset"]


# -- every uplink down --------------------------------------------------------------------


def test_all_down_with_none_leaves_no_route_and_says_so_once() -> None:
    driver = two()
    driver.fail("wan1")
    commands = driver.fail("wan2")
    assert driver.kernel.defaults() == []
    assert last_resorts(commands) == [
        LastResort(True, None, "no default route from pingu: when_all_down is none")
    ]
    driver.advance(5.0)
    assert last_resorts(driver.fail("wan1")) == []
    commands = driver.finish("wan2")
    assert last_resorts(commands) == [LastResort(False, None, "an uplink is up again")]


def test_keep_best_keeps_the_route_of_the_least_lossy_uplink_without_a_gap() -> None:
    driver = two(WhenAllDown.KEEP_BEST)
    driver.finish("wan1", round_result(received=0))
    commands = driver.finish("wan2", round_result(received=2))
    # wan2 went down last but lost less: it is kept, wan1 stays without a route.
    assert driver.kernel.defaults() == [own("wan2", GW2, 200)]
    assert not [c for c in commands if isinstance(c, RemoveOwnRoute)]
    (report,) = last_resorts(commands)
    assert (report.all_down, report.kept) == (True, "wan2")


def test_keep_best_switches_only_to_a_strictly_better_uplink_and_installs_first() -> None:
    driver = two(WhenAllDown.KEEP_BEST)
    driver.finish("wan1", round_result(received=1))
    driver.finish("wan2", round_result(received=1))
    # A tie: the route still in the table (wan2's, the last to fail) stays; nothing moves.
    assert driver.kernel.defaults() == [own("wan2", GW2, 200)]
    driver.advance(5.0)
    driver.finish("wan1", round_result(received=1))
    driver.finish("wan2", round_result(received=1))
    assert driver.kernel.defaults() == [own("wan2", GW2, 200)]  # equal again: no switch
    driver.advance(5.0)
    commands = driver.finish("wan1", round_result(received=2))
    routes = [c for c in commands if isinstance(c, InstallOwnRoute | RemoveOwnRoute)]
    assert routes == [InstallOwnRoute(own("wan1", GW1, 100)), RemoveOwnRoute(own("wan2", GW2, 200))]


def test_keep_best_on_a_tie_keeps_the_route_of_the_uplink_that_failed_last() -> None:
    driver = two(WhenAllDown.KEEP_BEST)
    driver.fail("wan1")  # the primary dies first, wan2 still routed
    commands = driver.fail("wan2")  # the last routed uplink fails: equally lossy
    # wan2's route stays; the uplink that died earlier (lower metric or not) is not revived.
    assert driver.kernel.defaults() == [own("wan2", GW2, 200)]
    assert [c for c in commands if isinstance(c, InstallOwnRoute | RemoveOwnRoute)] == []
    (report,) = last_resorts(commands)
    assert (report.all_down, report.kept) == (True, "wan2")


def test_keep_best_makes_the_kept_route_before_the_failed_one_breaks() -> None:
    driver = two(WhenAllDown.KEEP_BEST)
    driver.finish("wan2", round_result(received=2))  # wan2 fails first, 3/5 lost
    # wan1, the last routed, fails worse (5/5 lost): wan2's route must be in first.
    commands = driver.finish("wan1", round_result(received=0))
    assert driver.kernel.defaults() == [own("wan2", GW2, 200)]
    routes = [c for c in commands if isinstance(c, InstallOwnRoute | RemoveOwnRoute)]
    assert routes == [InstallOwnRoute(own("wan2", GW2, 200)), RemoveOwnRoute(own("wan1", GW1, 100))]


def test_keep_best_gives_way_to_an_uplink_that_comes_back() -> None:
    driver = two(WhenAllDown.KEEP_BEST)
    driver.fail("wan1")
    driver.fail("wan2")
    assert driver.kernel.defaults() == [own("wan2", GW2, 200)]  # the last to fail
    driver.advance(5.0)
    commands = driver.finish("wan1")
    assert driver.kernel.defaults() == [own("wan1", GW1, 100)]
    routes = [c for c in commands if isinstance(c, InstallOwnRoute | RemoveOwnRoute)]
    assert routes == [InstallOwnRoute(own("wan1", GW1, 100)), RemoveOwnRoute(own("wan2", GW2, 200))]
    assert last_resorts(commands)[0].all_down is False


def test_keep_best_never_keeps_an_uplink_without_carrier() -> None:
    driver = two(WhenAllDown.KEEP_BEST)
    driver.fail("wan1")
    driver.link("wan2", carrier=False)
    assert driver.kernel.defaults() == [own("wan1", GW1, 100)]
    driver.link("wan1", carrier=False)
    assert driver.kernel.defaults() == []


# -- reload -------------------------------------------------------------------------------


def test_reload_drops_adds_and_updates_uplinks() -> None:
    driver = two()
    old = driver.core.config
    new = dataclasses.replace(
        old,
        uplinks=(uplink("wan1", 150, period=1.0), uplink("ppp0", 300)),
    )
    commands = driver.reconfigure(new)
    assert [u.name for u in driver.core.view().uplinks] == ["wan1", "ppp0"]
    # wan2's captured route is put back and pingu's removed; wan1 moves to metric 150.
    assert RestoreCapturedRoute(dhcp_route("wan2", GW2)) in commands
    assert RemoveOwnRoute(own("wan2", GW2, 200)) in commands
    moves = [
        c
        for c in commands
        if isinstance(c, InstallOwnRoute | RemoveOwnRoute) and c.route.ifindex == 2
    ]
    assert moves == [InstallOwnRoute(own("wan1", GW1, 150)), RemoveOwnRoute(own("wan1", GW1, 100))]
    wan1 = driver.core.view().uplink("wan1")
    assert wan1.lease is not None
    assert wan1.lease.gateway == GW1
    assert wan1.next_round_at <= driver.clock.monotonic() + 1.0
    driver.link("ppp0", p2p=True)
    driver.capture("ppp0", None, proto=3)
    assert own("ppp0", None, 300) in driver.kernel.defaults()


def test_routes_a_reload_brings_under_management_are_captured_without_a_repair_warning() -> None:
    # What the table held all along was never pingu's to be told of: the first read after
    # the reload captures it as at start-up; only later reads call a difference a repair.
    ipv4_only = uplink("wan1", 100)
    driver = driver_for(Config(proto=PROTO, uplinks=(ipv4_only,)))
    driver.capture("wan1", GW1)
    medium = RouteAttributes(pref=0)
    ra = Route(2, "wan1", "fe80::1", 1024, 9, family=Family.IPV6, attributes=medium, expires=600)
    extra = uplink("wan2", 200)
    dual = dataclasses.replace(ipv4_only, targets=(TARGET, TARGET6))
    driver.reconfigure(Config(proto=PROTO, uplinks=(dual, extra)))
    table = (dhcp_route("wan2", GW2), ra)
    links = tuple(
        LinkChanged(index, name, True, True, False, "100.64.0.2", f"2001:db8:{index}::2")
        for name, index in (("wan1", 2), ("wan2", 3))
    )
    commands = driver.send(TableSnapshot(links, (*driver.kernel.defaults(), *table)))
    assert not [c for c in commands if isinstance(c, TableRepaired)], commands
    captured = {c.route for c in commands if isinstance(c, RouteCaptured)}
    assert captured == set(table)
    # Later reads do call a route nobody told of a repair.
    renewed = dataclasses.replace(ra, metric=1030)
    commands = driver.send(TableSnapshot(links, (*driver.kernel.defaults(), renewed)))
    assert [c.uplink for c in commands if isinstance(c, TableRepaired)] == ["wan1"]


# -- refused routes -------------------------------------------------------------------------


def test_a_refused_route_is_not_retried_before_the_next_verdict() -> None:
    driver = two()
    route = own("wan1", GW1, 100)
    driver.kernel.refuse.add(route)
    driver.send(RouteVanished(route))  # someone deleted it; the kernel refuses it now
    assert driver.core.view().uplink("wan1").route is None
    assert [c for c in driver.advance(0.1) if isinstance(c, InstallOwnRoute)] == []
    driver.kernel.refuse.clear()
    assert InstallOwnRoute(route) in driver.finish("wan1")
    assert driver.kernel.own("wan1") == [route]


# -- state across restarts ------------------------------------------------------------------


def test_saved_state_round_trips_into_a_new_core() -> None:
    driver = two(reset_script="/sbin/reset")
    driver.fail("wan2")
    driver.clock.advance(30.0)
    saved = driver.core.saved_state(driver.clock.monotonic())
    assert saved["wan1"] == SavedUplink(Lease(GW1, (dhcp_route("wan1", GW1),)), Health.UP, None)
    assert saved["wan2"] == SavedUplink(Lease(GW2, (dhcp_route("wan2", GW2),)), Health.DOWN, 30.0)

    restarted = Driver(driver.core.config)
    taken = restarted.core.adopt_state(saved, restarted.clock.monotonic())
    assert "wan2: reset script ran 30 s ago" in taken
    restarted.link("wan1")
    restarted.link("wan2")
    # wan1 was up: its route is back at once; wan2 was down: it waits for a good round.
    assert restarted.kernel.defaults() == [own("wan1", GW1, 100)]
    restarted.fail("wan2")
    assert restarted.scripts("wan2") == []  # the grace period survived the restart
    restarted.advance(5.0)
    restarted.finish("wan2")
    assert own("wan2", GW2, 200) in restarted.kernel.defaults()
    # The lease kept the captured route's attributes: stop puts it back as it was.
    stop = restarted.core.stop(restarted.clock.monotonic())
    assert RestoreCapturedRoute(dhcp_route("wan2", GW2)) in stop


def test_a_router_lease_survives_a_restart_with_the_lifetime_it_has_left() -> None:
    # The core keeps a router's lifetime as a monotonic deadline; the state file holds a
    # wall-clock one: the lease crosses over as seconds left, whatever either clock reads.
    cfg = Config(proto=PROTO, uplinks=(uplink("wan1", 100, targets=(TARGET6,)),))
    driver = driver_for(cfg)
    medium = RouteAttributes(pref=0)
    ra = Route(2, "wan1", "fe80::1", 1024, 9, family=Family.IPV6, attributes=medium, expires=600)
    driver.send(RouteAppeared(ra))
    driver.clock.advance(100.0)
    wall = 1_800_000_000.0
    document = state_document(driver.core.saved_state(driver.clock.monotonic()), "boot", wall)
    assert document["uplinks"]["wan1"]["ipv6"]["lease"]["valid_until"] == wall + 500  # type: ignore[index]

    restarted = Driver(cfg)  # 20 s later, in the same boot
    restarted.clock.now = driver.clock.monotonic() + 20.0
    saved = parse_state(document, "boot", wall + 20.0)
    restarted.core.adopt_state(saved, restarted.clock.monotonic())
    restarted.link("wan1")
    stop = restarted.core.stop(restarted.clock.monotonic())
    (restored,) = [c.route for c in stop if isinstance(c, RestoreCapturedRoute)]
    assert restored == ra
    assert restored.expires == 480.0


def test_a_reload_dropping_ipv6_puts_the_ra_route_back_with_the_lifetime_it_has_left() -> None:
    dual = uplink("wan1", 100, targets=(TARGET, TARGET6))
    driver = driver_for(Config(proto=PROTO, uplinks=(dual,)))
    medium = RouteAttributes(pref=0)
    ra = Route(2, "wan1", "fe80::1", 1024, 9, family=Family.IPV6, attributes=medium, expires=600)
    driver.send(RouteAppeared(ra))
    driver.clock.advance(100.0)
    ipv4_only = dataclasses.replace(dual, targets=(TARGET,))
    commands = driver.reconfigure(Config(proto=PROTO, uplinks=(ipv4_only,)))
    (restored,) = [c.route for c in commands if isinstance(c, RestoreCapturedRoute)]
    assert restored == ra
    assert restored.expires == 500.0
    # The same when the whole uplink is dropped.
    driver = driver_for(Config(proto=PROTO, uplinks=(dual,)))
    driver.send(RouteAppeared(ra))
    driver.clock.advance(100.0)
    commands = driver.reconfigure(Config(proto=PROTO, uplinks=(uplink("wan2", 200),)))
    (restored,) = [c.route for c in commands if isinstance(c, RestoreCapturedRoute)]
    assert restored.expires == 500.0


def test_saved_state_for_unknown_uplinks_is_ignored() -> None:
    driver = two()
    assert driver.core.adopt_state({"eth7": SavedUplink(None, Health.UP, None)}, 0.0) == []
