"""The core and the table it shares with others: captured routes kept until pingu's is in,
copied and put back whole, all of them; a route replaced in place; a full read of the table
repairing what no event told of; py-pingu's gateways."""

from __future__ import annotations

import dataclasses

from pingu.domain.commands import (
    DeleteCapturedRoute,
    InstallOwnRoute,
    RemoveOwnRoute,
    RestoreCapturedRoute,
    StartProbe,
)
from pingu.domain.events import LinkChanged, RouteAppeared, TableSnapshot
from pingu.domain.model import Family, Route, RouteAttributes
from pingu.domain.reports import (
    TableRepaired,
)
from pingu.domain.routes import own_route
from tests.unit.fakes import IFINDEX, PROTO, TARGET6, Driver, config, dhcp_route, uplink
from tests.unit.test_core import GW1, GW2, own, two_uplinks

CLOUD = RouteAttributes(prefsrc="100.64.0.2", onlink=True)
MTU = RouteAttributes(metrics=(("advmss", 1360), ("mtu", 1400)))


def with_attributes(route: Route, attributes: RouteAttributes) -> Route:
    return dataclasses.replace(route, attributes=attributes)


def own_with(ifname: str, gateway: str, metric: int, attributes: RouteAttributes) -> Route:
    return own_route(IFINDEX[ifname], ifname, gateway, metric, PROTO, attributes=attributes)


# -- pingu's route copies what it was learned from ----------------------------------------


def test_an_onlink_route_gives_pingus_route_its_onlink_and_source() -> None:
    driver = two_uplinks()
    cloud = with_attributes(dhcp_route("wan1", "172.31.1.1"), CLOUD)
    commands = driver.send(RouteAppeared(cloud))
    mine = own_with("wan1", "172.31.1.1", 100, CLOUD)
    assert [c for c in commands if isinstance(c, InstallOwnRoute | DeleteCapturedRoute)] == [
        InstallOwnRoute(mine),
        DeleteCapturedRoute(cloud),
    ]
    assert driver.core.stop(driver.clock.monotonic()) == [
        RestoreCapturedRoute(cloud),
        RemoveOwnRoute(mine),
    ]


def test_a_new_mtu_moves_pingus_route_make_before_break() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    renewed = with_attributes(dhcp_route("wan1", GW1), MTU)
    commands = driver.send(RouteAppeared(renewed))
    routes = [
        c for c in commands if isinstance(c, InstallOwnRoute | RemoveOwnRoute | DeleteCapturedRoute)
    ]
    assert routes == [
        InstallOwnRoute(own_with("wan1", GW1, 100, MTU)),
        RemoveOwnRoute(own("wan1", GW1, 100)),
        DeleteCapturedRoute(renewed),
    ]


def test_a_point_to_point_route_needs_no_onlink() -> None:
    driver = Driver(config(uplink("ppp0", 50)))
    driver.link("ppp0", p2p=True)
    driver.send(RouteAppeared(with_attributes(dhcp_route("ppp0", None, proto=3), CLOUD)))
    (mine,) = driver.kernel.own("ppp0")
    assert mine.attributes == RouteAttributes(prefsrc="100.64.0.2")


def test_a_point_to_point_ipv6_route_is_asked_for_as_the_kernel_files_it() -> None:
    # IPv6 routes have no scope (the kernel files every one as universe) and always carry
    # their router preference: pingu's gateway-less route must be asked for that way, or
    # the kernel's notification of it looks like another route of pingu's, to be removed.
    driver = Driver(config(uplink("ppp0", 50, targets=(TARGET6,))))
    driver.link("ppp0", p2p=True)
    medium = RouteAttributes(pref=0)
    ra = Route(4, "ppp0", None, 1024, 9, family=Family.IPV6, attributes=medium, expires=1800)
    driver.send(RouteAppeared(ra))
    as_filed = Route(4, "ppp0", None, 50, PROTO, family=Family.IPV6, attributes=medium)
    assert driver.kernel.own("ppp0") == [as_filed]
    told = driver.send(RouteAppeared(as_filed))  # the kernel's notification of it
    assert not [c for c in told if isinstance(c, RemoveOwnRoute)], told
    assert driver.kernel.own("ppp0") == [as_filed]


# -- every captured route comes back ------------------------------------------------------


def test_two_foreign_routes_on_one_uplink_are_both_deleted_and_both_put_back() -> None:
    driver = two_uplinks()
    static = dhcp_route("wan1", GW1, metric=7, proto=4)
    dhcp = with_attributes(dhcp_route("wan1", GW1), MTU)
    driver.send(RouteAppeared(static))
    driver.send(RouteAppeared(dhcp))
    assert driver.kernel.defaults() == [own_with("wan1", GW1, 100, MTU)]
    stop = driver.core.stop(driver.clock.monotonic())
    assert [c for c in stop if isinstance(c, RestoreCapturedRoute)] == [
        RestoreCapturedRoute(static),
        RestoreCapturedRoute(dhcp),
    ]


def test_a_renewal_in_the_same_slot_replaces_the_captured_route() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.capture("wan1", "192.0.2.254")  # the DHCP client's next lease, same metric
    stop = driver.core.stop(driver.clock.monotonic())
    assert [c for c in stop if isinstance(c, RestoreCapturedRoute)] == [
        RestoreCapturedRoute(dhcp_route("wan1", "192.0.2.254"))
    ]


# -- a route replaced in place -------------------------------------------------------------


def test_a_route_replacing_pingus_is_captured_and_pingus_put_back_beside_it() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    replacing = dhcp_route("wan1", GW1, metric=100)  # pingu's metric: pingu's slot
    commands = driver.send(RouteAppeared(replacing, replaced=True))
    assert isinstance(commands[0], TableRepaired)
    assert "was replaced by" in commands[0].what
    routes = [
        c for c in commands if isinstance(c, InstallOwnRoute | RemoveOwnRoute | DeleteCapturedRoute)
    ]
    assert routes == [InstallOwnRoute(own("wan1", GW1, 100)), DeleteCapturedRoute(replacing)]
    assert driver.kernel.defaults() == [own("wan1", GW1, 100)]


def test_a_route_added_beside_pingus_in_its_slot_without_replace_changes_nothing_of_pingus() -> (
    None
):
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    appended = dhcp_route("wan1", GW1, metric=100)
    commands = driver.send(RouteAppeared(appended))
    assert not [c for c in commands if isinstance(c, InstallOwnRoute | TableRepaired)]
    assert driver.kernel.defaults() == [own("wan1", GW1, 100)]


# -- a full read of the table -----------------------------------------------------------


def snapshot(driver: Driver, *links: LinkChanged) -> TableSnapshot:
    return TableSnapshot(links, tuple(driver.kernel.routes))


def links(*names: str) -> tuple[LinkChanged, ...]:
    return tuple(LinkChanged(IFINDEX[n], n, True, True, False, "100.64.0.2") for n in names)


def test_a_missing_own_route_is_put_back_and_said() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.capture("wan2", GW2)
    driver.kernel.routes.discard(own("wan1", GW1, 100))  # gone without a notification
    commands = driver.send(snapshot(driver, *links("wan1", "wan2")))
    repaired = [c for c in commands if isinstance(c, TableRepaired)]
    assert [r.uplink for r in repaired] == ["wan1"]
    assert "is missing" in repaired[0].what
    assert InstallOwnRoute(own("wan1", GW1, 100)) in commands
    assert own("wan1", GW1, 100) in driver.kernel.defaults()


def test_a_foreign_route_seen_only_in_the_read_is_captured_and_said() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    back = dhcp_route("wan1", GW1)
    driver.kernel.routes.add(back)  # re-added, the notification lost
    commands = driver.send(snapshot(driver, *links("wan1", "wan2")))
    assert any(isinstance(c, TableRepaired) and "capturing it" in c.what for c in commands)
    assert DeleteCapturedRoute(back) in commands


def test_a_read_that_matches_the_beliefs_changes_nothing() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.capture("wan2", GW2)
    commands = driver.send(snapshot(driver, *links("wan1", "wan2")))
    assert [c for c in commands if not isinstance(c, StartProbe)] == []


def test_an_uplink_missing_from_the_read_is_gone() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.kernel.routes.discard(own("wan1", GW1, 100))
    commands = driver.send(snapshot(driver, *links("wan2")))
    assert TableRepaired("wan1", "interface gone") in commands
    assert not driver.core.view().uplink("wan1").link.present


def test_the_first_read_repairs_nothing_it_only_captures() -> None:
    driver = Driver(config(uplink("wan1", 100)))
    first = TableSnapshot(links("wan1"), (dhcp_route("wan1", GW1),), initial=True)
    commands = driver.send(first)
    assert not [c for c in commands if isinstance(c, TableRepaired)]
    assert driver.kernel.defaults() == [own("wan1", GW1, 100)]


# -- a refused route is tried again when the uplink's address changes --------------------


def test_a_refused_route_is_tried_again_once_the_address_changes() -> None:
    driver = two_uplinks()
    mine = own("wan1", GW1, 100)
    driver.kernel.refuse.add(mine)
    driver.capture("wan1", GW1)
    driver.kernel.refuse.clear()
    assert driver.link("wan1") == []  # same address: not before the next verdict
    commands = driver.send(LinkChanged(2, "wan1", True, True, False, "100.64.0.9"))
    assert InstallOwnRoute(mine) in commands


# -- py-pingu's gateways file -------------------------------------------------------------


def test_gateways_from_the_gateways_file_are_probed_before_they_are_routed() -> None:
    driver = two_uplinks()
    driver.capture("wan2", GW2)
    taken = driver.core.adopt_gateways({"wan1": GW1, "wan2": "192.0.2.99", "eth7": GW1}, 0.0)
    assert taken == [f"wan1: gateway {GW1}"]  # wan2 knows a gateway; eth7 is not configured
    probes = driver.probes(driver.advance(0.0))
    assert [(p.uplink, p.gateway) for p in probes] == [("wan1", GW1)]
    assert driver.kernel.own("wan1") == []
    driver.finish("wan1")
    assert driver.kernel.own("wan1") == [own("wan1", GW1, 100)]
    assert [
        c for c in driver.core.stop(driver.clock.monotonic()) if isinstance(c, RestoreCapturedRoute)
    ] == [
        RestoreCapturedRoute(dhcp_route("wan2", GW2))
    ]  # nothing was captured on wan1: nothing to put back
