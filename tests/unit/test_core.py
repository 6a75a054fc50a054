"""The core's rules, driven with a fake clock and a fake kernel table."""

from __future__ import annotations

from pingu.domain.commands import (
    DeleteCapturedRoute,
    InstallOwnRoute,
    RemoveOwnRoute,
    RunScript,
    StartProbe,
)
from pingu.domain.config import InitialState
from pingu.domain.events import LinkChanged, RouteAppeared, RouteVanished, ScriptFinished
from pingu.domain.model import Route
from pingu.domain.reports import (
    RoundJudged,
    RouteCaptured,
)
from pingu.domain.routes import own_route
from tests.unit.fakes import PROTO, Driver, config, dhcp_route, round_result, uplink

GW1 = "192.0.2.1"
GW2 = "198.51.100.1"


def two_uplinks(**settings: object) -> Driver:
    driver = Driver(config(uplink("wan1", 100, **settings), uplink("wan2", 200, **settings)))
    driver.link("wan1")
    driver.link("wan2")
    return driver


def own(ifname: str, gateway: str | None, metric: int) -> Route:
    return own_route({"wan1": 2, "wan2": 3, "ppp0": 4}[ifname], ifname, gateway, metric, PROTO)


# -- capture ------------------------------------------------------------------------------


def test_capture_installs_own_route_before_deleting_the_dhcp_one() -> None:
    driver = two_uplinks()
    commands = driver.capture("wan1", GW1)
    routes = [c for c in commands if isinstance(c, InstallOwnRoute | DeleteCapturedRoute)]
    assert routes == [
        InstallOwnRoute(own("wan1", GW1, 100)),
        DeleteCapturedRoute(dhcp_route("wan1", GW1)),
    ]
    assert driver.kernel.defaults() == [own("wan1", GW1, 100)]
    assert isinstance(commands[0], RouteCaptured)
    assert commands[0].gateway_changed


def test_capture_with_initial_state_down_waits_for_a_good_round() -> None:
    driver = Driver(config(uplink("wan1", 100), initial=InitialState.DOWN))
    driver.link("wan1")
    driver.capture("wan1", GW1)
    assert driver.kernel.defaults() == []
    driver.finish("wan1")
    assert driver.kernel.defaults() == [own("wan1", GW1, 100)]


def test_capture_starts_a_round_through_the_new_gateway_at_once() -> None:
    driver = two_uplinks()
    commands = driver.capture("wan1", GW1)
    assert driver.probes(commands) == [
        StartProbe(
            "wan1", 2, GW1, False, "100.64.0.2", ("203.0.113.10",), 5, 500, 1000, 2, 1, 1, 1000.0
        )
    ]


def test_foreign_routes_are_left_alone() -> None:
    driver = two_uplinks()
    leave = [
        dhcp_route("eth9", "203.0.113.1"),
        Route(2, "wan1", GW1, 0, 16, dst_len=24),
        Route(2, "wan1", GW1, 100, 16, table=100),
    ]
    for route in leave:
        assert driver.send(RouteAppeared(route)) == []
        assert driver.send(RouteVanished(route)) == []


def test_route_of_unknown_ifindex_is_ignored() -> None:
    driver = two_uplinks()
    assert driver.send(RouteAppeared(Route(77, None, GW1, 0, 16))) == []


def test_route_resolved_by_ifindex_when_the_adapter_did_not_name_it() -> None:
    driver = two_uplinks()
    commands = driver.send(RouteAppeared(Route(2, None, GW1, 0, 16)))
    assert DeleteCapturedRoute(Route(2, None, GW1, 0, 16)) in commands


def test_gateway_change_moves_the_route_make_before_break() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.finish("wan1")
    commands = driver.capture("wan1", "192.0.2.254")
    new, old = own("wan1", "192.0.2.254", 100), own("wan1", GW1, 100)
    routes = [
        c for c in commands if isinstance(c, InstallOwnRoute | RemoveOwnRoute | DeleteCapturedRoute)
    ]
    assert routes == [
        InstallOwnRoute(new),
        RemoveOwnRoute(old),
        DeleteCapturedRoute(dhcp_route("wan1", "192.0.2.254")),
    ]
    assert driver.probes(commands)[0].gateway == "192.0.2.254"


def test_same_gateway_again_changes_nothing_but_deletes_the_dhcp_route() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.finish("wan1")
    commands = driver.capture("wan1", GW1, metric=5)
    assert [c for c in commands if not isinstance(c, RouteCaptured)] == [
        DeleteCapturedRoute(dhcp_route("wan1", GW1, metric=5))
    ]


def test_point_to_point_route_without_gateway() -> None:
    driver = Driver(config(uplink("ppp0", 50)))
    driver.link("ppp0", p2p=True)
    commands = driver.capture("ppp0", None)
    assert driver.kernel.defaults() == [own("ppp0", None, 50)]
    probe = driver.probes(commands)[0]
    assert probe.gateway is None
    assert probe.point_to_point


# -- own routes ---------------------------------------------------------------------------


def test_own_route_found_at_start_is_adopted_with_its_gateway() -> None:
    driver = two_uplinks()
    route = own("wan1", GW1, 100)
    commands = driver.send(RouteAppeared(route))
    assert [c for c in commands if not isinstance(c, StartProbe)] == []
    assert driver.core.view().uplink("wan1").lease is not None
    assert driver.probes(commands)[0].gateway == GW1


def test_stale_own_routes_are_removed() -> None:
    driver = two_uplinks()
    wrong_metric = own("wan1", GW1, 7)
    on_unconfigured = Route(9, "eth9", GW1, 100, PROTO)
    assert driver.send(RouteAppeared(wrong_metric)) == [RemoveOwnRoute(wrong_metric)]
    assert driver.send(RouteAppeared(on_unconfigured)) == [RemoveOwnRoute(on_unconfigured)]


def test_a_second_own_route_for_one_uplink_is_removed() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    stray = own("wan1", "192.0.2.99", 100)
    assert RemoveOwnRoute(stray) in driver.send(RouteAppeared(stray))
    assert driver.kernel.own("wan1") == [own("wan1", GW1, 100)]


def test_own_route_deleted_by_someone_else_is_put_back() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    route = own("wan1", GW1, 100)
    assert driver.send(RouteVanished(route)) == [InstallOwnRoute(route)]
    assert driver.send(RouteVanished(own("wan1", "192.0.2.77", 100))) == []


# -- rounds and verdicts ------------------------------------------------------------------


def test_failover_and_failback() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.capture("wan2", GW2)
    driver.finish("wan2")
    commands = driver.fail("wan1")
    assert RemoveOwnRoute(own("wan1", GW1, 100)) in commands
    assert driver.kernel.defaults() == [own("wan2", GW2, 200)]
    assert driver.transitions()[-1] == ("wan1", "up", "down")
    driver.advance(5)
    commands = driver.finish("wan1")
    assert InstallOwnRoute(own("wan1", GW1, 100)) in commands
    assert set(driver.kernel.defaults()) == {own("wan1", GW1, 100), own("wan2", GW2, 200)}


def test_round_verdict_is_reported_with_its_reason() -> None:
    driver = two_uplinks(max_lost=2)
    driver.capture("wan1", GW1)
    commands = driver.finish("wan1", round_result(received=1))
    judged = [c for c in commands if isinstance(c, RoundJudged)]
    assert len(judged) == 1
    assert not judged[0].passed
    assert "4/5 lost" in judged[0].reason


def test_rounds_start_period_after_the_previous_start() -> None:
    driver = two_uplinks(period=5.0)
    driver.capture("wan1", GW1)
    assert driver.core.next_deadline() is not None
    driver.advance(2)
    driver.finish("wan1")
    assert driver.probes(driver.advance(2.9)) == []
    assert len(driver.probes(driver.advance(0.1))) == 1


def test_no_second_round_while_one_is_running() -> None:
    driver = two_uplinks(period=1.0)
    driver.capture("wan1", GW1)
    assert driver.probes(driver.advance(3)) == []
    # The round took longer than its period: the next one starts at once.
    assert len(driver.probes(driver.finish("wan1"))) == 1


def test_result_for_unknown_uplink_is_ignored() -> None:
    driver = two_uplinks()
    assert driver.finish("eth9") == []


# -- links --------------------------------------------------------------------------------


def test_carrier_loss_removes_the_route_at_once_and_rounds_fail_without_sending() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.finish("wan1")
    commands = driver.link("wan1", carrier=False)
    assert RemoveOwnRoute(own("wan1", GW1, 100)) in commands
    assert driver.transitions()[-1] == ("wan1", "up", "down")
    later = driver.advance(5)
    assert driver.probes(later) == []
    judged = [c for c in later if isinstance(c, RoundJudged)]
    assert judged
    assert "carrier down" in judged[0].reason


def test_carrier_back_starts_a_round_at_once() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.finish("wan1")
    driver.link("wan1", carrier=False)
    driver.advance(1)
    assert len(driver.probes(driver.link("wan1"))) == 1


def test_probe_result_after_carrier_loss_counts_as_failed() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.link("wan1", carrier=False)
    commands = driver.finish("wan1")
    assert [c.passed for c in commands if isinstance(c, RoundJudged)] == [False]


def test_interface_deleted_and_recreated_is_addressed_by_its_new_index() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.finish("wan1")
    driver.kernel.routes.clear()  # the kernel drops the routes of a deleted link
    driver.unplug("wan1")
    assert driver.transitions()[-1] == ("wan1", "up", "down")
    assert driver.core.view().uplink("wan1").route is None
    recreated = Route(12, "wan1", GW1, 0, 16)
    driver.send(driver_link(12))
    driver.send(RouteAppeared(recreated))
    probe = driver.probes()[-1]
    assert probe.ifindex == 12
    driver.finish("wan1")
    assert driver.kernel.own("wan1") == [own_route(12, "wan1", GW1, 100, PROTO)]


def driver_link(ifindex: int) -> LinkChanged:
    return LinkChanged(ifindex, "wan1", True, True, False, None)


def test_new_ifindex_without_deletion_seen_is_a_recreation() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.finish("wan1")
    commands = driver.send(driver_link(12))
    assert driver.transitions()[-1] == ("wan1", "up", "down")
    assert RemoveOwnRoute(own("wan1", GW1, 100)) not in commands  # died with the old link


def test_unconfigured_links_are_ignored() -> None:
    driver = two_uplinks()
    assert driver.link("eth9") == []
    assert driver.unplug("eth9") == []


def test_admin_down_takes_the_uplink_down() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.send(LinkChanged(2, "wan1", True, False, False, None))
    assert driver.transitions()[-1][2] == "down"
    assert driver.kernel.own("wan1") == []


# -- reset script -------------------------------------------------------------------------


def scripted(grace: float = 60.0) -> Driver:
    return two_uplinks(reset_script="/usr/local/sbin/reset-modem", reset_script_grace_period=grace)


def test_failed_round_removes_the_route_before_the_script_starts() -> None:
    driver = scripted()
    driver.capture("wan1", GW1)
    commands = driver.fail("wan1")
    kinds = [type(c) for c in commands if isinstance(c, RemoveOwnRoute | RunScript)]
    assert kinds == [RemoveOwnRoute, RunScript]
    script = driver.scripts("wan1")[0]
    env = dict(script.env)
    assert env["PINGU_INTERFACE"] == "wan1"
    assert env["PINGU_GATEWAY"] == GW1
    assert env["PINGU_LOSS"] == "5/5"
    assert "no reply" in env["PINGU_REASON"]


def test_script_runs_at_most_once_per_grace_period() -> None:
    driver = scripted(grace=60)
    driver.capture("wan1", GW1)
    driver.fail("wan1")
    driver.send(ScriptFinished("wan1", "/usr/local/sbin/reset-modem", 0))
    for _ in range(11):
        driver.advance(5)
        driver.fail("wan1")
    assert len(driver.scripts("wan1")) == 1
    driver.advance(5)
    driver.fail("wan1")
    assert len(driver.scripts("wan1")) == 2


def test_script_not_started_twice_while_running() -> None:
    driver = scripted(grace=0)
    driver.capture("wan1", GW1)
    driver.fail("wan1")
    driver.advance(5)
    driver.fail("wan1")
    assert len(driver.scripts("wan1")) == 1


def test_no_gateway_learned_for_a_period_is_faulty() -> None:
    driver = scripted()
    driver.advance(4)
    assert driver.scripts("wan1") == []
    driver.advance(1)
    assert [s.reason for s in driver.scripts("wan1")] == ["no gateway learned"]


def test_absent_interface_without_gateway_is_not_faulty() -> None:
    driver = Driver(config(uplink("wan1", 100, reset_script="/bin/true")))
    for _ in range(5):
        driver.advance(5)
    assert driver.scripts("wan1") == []


def test_script_not_run_while_failing_but_not_yet_down() -> None:
    driver = two_uplinks(reset_script="/bin/true", fall=2)
    driver.capture("wan1", GW1)
    driver.fail("wan1")
    assert driver.scripts("wan1") == []
    driver.advance(5)
    driver.fail("wan1")
    assert len(driver.scripts("wan1")) == 1


def test_script_env_without_any_round_has_no_loss() -> None:
    driver = scripted()
    driver.advance(5)
    env = dict(driver.scripts("wan1")[0].env)
    assert "PINGU_LOSS" not in env
    assert env["PINGU_GATEWAY"] == ""


def test_refused_install_keeps_the_captured_route_and_is_retried_at_the_next_verdict() -> None:
    driver = two_uplinks()
    route = own("wan1", GW1, 100)
    driver.kernel.refuse.add(route)
    commands = driver.capture("wan1", GW1)
    # pingu's replacement was refused: the DHCP route stays, the uplink keeps its way out.
    assert not [c for c in commands if isinstance(c, DeleteCapturedRoute)]
    assert driver.kernel.defaults() == [dhcp_route("wan1", GW1)]
    assert driver.core.view().uplink("wan1").route is None
    assert [c for c in driver.advance(0.1) if isinstance(c, InstallOwnRoute)] == []
    driver.kernel.refuse.clear()
    commands = driver.finish("wan1")
    assert [c for c in commands if isinstance(c, InstallOwnRoute | DeleteCapturedRoute)] == [
        InstallOwnRoute(route),
        DeleteCapturedRoute(dhcp_route("wan1", GW1)),
    ]
    assert driver.kernel.defaults() == [route]


def test_refused_install_while_the_uplink_fails_still_deletes_the_captured_route() -> None:
    driver = two_uplinks()
    driver.kernel.refuse.add(own("wan1", GW1, 100))
    driver.capture("wan1", GW1)
    driver.fail("wan1")
    assert driver.kernel.own("wan1") == []
    assert dhcp_route("wan1", GW1) not in driver.kernel.defaults()


def test_stop_puts_captured_routes_back_before_removing_its_own() -> None:
    from pingu.domain.commands import (
        RestoreCapturedRoute,
    )

    driver = two_uplinks()
    driver.capture("wan1", GW1, metric=1024)
    driver.capture("wan2", GW2, metric=600)
    driver.fail("wan2")
    commands = driver.core.stop(driver.clock.monotonic())
    assert commands == [
        RestoreCapturedRoute(dhcp_route("wan1", GW1, metric=1024)),
        RemoveOwnRoute(own("wan1", GW1, 100)),
        RestoreCapturedRoute(dhcp_route("wan2", GW2, metric=600)),
    ]


def test_stop_does_not_restore_a_gateway_only_adopted_from_its_own_route() -> None:
    driver = two_uplinks()
    driver.send(RouteAppeared(own("wan1", GW1, 100)))
    assert driver.core.stop(driver.clock.monotonic()) == [RemoveOwnRoute(own("wan1", GW1, 100))]


def test_round_through_an_old_gateway_is_abandoned_for_a_fresh_one() -> None:
    from pingu.domain.events import ProbeFinished

    driver = two_uplinks(reset_script="/bin/true")
    driver.capture("wan1", GW1)
    old_round = driver.probes()[-1].round_id
    commands = driver.capture("wan1", "192.0.2.254")
    (fresh,) = driver.probes(commands)
    assert fresh.gateway == "192.0.2.254"
    assert fresh.round_id != old_round
    stale = ProbeFinished("wan1", round_result(received=0), old_round)
    assert driver.send(stale) == []
    assert driver.kernel.own("wan1") == [own("wan1", "192.0.2.254", 100)]


def test_carrier_back_during_a_round_starts_a_fresh_one() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.link("wan1", carrier=False)
    commands = driver.link("wan1")
    assert len(driver.probes(commands)) == 1
