"""The real daemon following its uplinks in the lab: a renewed lease with a new gateway,
the point-to-point uplink failing over and back, a modem redial (the interface re-created
with a new ifindex), and routes pingu does not own, which it must never touch."""

from __future__ import annotations

from typing import Any

import pytest

from pingu.lab import Lab, Route, Uplink
from tests.netns.conftest import LabFactory
from tests.netns.daemon import Daemons

pytestmark = pytest.mark.netns

FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
RTPROT_DHCP, RTPROT_STATIC = 16, 4


def fast_config(lab: Lab, metrics: dict[str, int], **top: Any) -> dict[str, Any]:
    interfaces = {name: {"metric": metric, **FAST} for name, metric in metrics.items()}
    return {"host": lab.targets[0], "period": 0.5, **top, "interfaces": interfaces}


def test_a_new_gateway_on_renewal_moves_the_route_without_duplicate_or_gap(
    lab_factory: LabFactory, daemons: Daemons
) -> None:
    lab = lab_factory(["wan1", "wan2"])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    pingu = daemons.start(lab, fast_config(lab, {"wan1": 100, "wan2": 200}), verbose=True)
    wan2 = (lab.gateway("wan2"), 200)
    pingu.until(
        lambda: pingu.own_routes() == {"wan1": (lab.gateway("wan1"), 100), "wan2": wan2},
        "pingu's routes",
    )

    def follows(gateway: str) -> None:
        """Until wan1's route goes via ``gateway``: at every look, exactly one pingu route
        on wan1 (own_routes fails on two), and wan2's untouched."""

        def moved() -> bool:
            routes = pingu.own_routes()
            assert "wan1" in routes, f"wan1 had no route while moving to {gateway}: {routes}"
            assert routes["wan2"] == wan2, routes
            return routes["wan1"] == (gateway, 100)

        pingu.until(moved, f"wan1's route via {gateway}")

    mark = pingu.mark()
    lab.dhcp_renew("wan1", "100.64.1.7")
    follows("100.64.1.7")
    pingu.wait_log(r" wan1: captured default via 100\.64\.1\.7 .*new gateway", after=mark)

    # A second renewal, after which the previous gateway no longer answers: the route
    # follows, and rounds through the new gateway keep passing.
    lab.dhcp_renew("wan1", "100.64.1.8", keep_old_gateway=False)
    mark = pingu.mark()
    follows("100.64.1.8")
    pingu.wait_log(r" wan1: echo \d+ to \S+ via 100\.64\.1\.8: reply in", after=mark)
    pingu.wait_log(r" wan1: round passed: ", after=mark, count=3)
    assert pingu.own_routes()["wan1"] == ("100.64.1.8", 100)
    assert not [d for d in pingu.decisions("wan1", after=mark) if "->" in d]
    assert [r for r in lab.default_routes() if r.proto == RTPROT_DHCP] == []


def test_point_to_point_uplink_fails_over_and_back(
    lab_factory: LabFactory, daemons: Daemons
) -> None:
    lab = lab_factory([Uplink("ppp0", "p2p"), "wan1"])
    lab.dhcp_add("ppp0", metric=1024, proto="boot")  # pppd: `default dev ppp0 scope link`
    lab.dhcp_add("wan1", metric=1025)
    pingu = daemons.start(lab, fast_config(lab, {"ppp0": 100, "wan1": 200}))
    both = {"ppp0": (None, 100), "wan1": (lab.gateway("wan1"), 200)}
    pingu.until(lambda: pingu.own_routes() == both, "pingu's routes on ppp0 and wan1")
    (ppp0,) = [r for r in lab.default_routes() if r.oif == "ppp0"]
    assert ppp0.scope == 253, ppp0  # a link-scope route without a gateway, like pppd's

    lab.cut_upstream("ppp0")
    pingu.until(lambda: "ppp0" not in pingu.own_routes(), "failover: ppp0's route removed")
    assert pingu.own_routes() == {"wan1": both["wan1"]}
    lab.restore_upstream("ppp0")
    pingu.until(lambda: pingu.own_routes() == both, "failback: ppp0's route back")

    lab.carrier_down("ppp0")
    pingu.until(lambda: "ppp0" not in pingu.own_routes(), "ppp0's carrier lost: route removed")
    assert pingu.own_routes() == {"wan1": both["wan1"]}
    lab.carrier_up("ppp0")
    pingu.until(lambda: pingu.own_routes() == both, "ppp0's carrier back: route back")
    pingu.wait_log(r" ppp0 up -> down: carrier lost")


@pytest.mark.parametrize(
    "modem", [Uplink("modem", "p2p"), Uplink("modem", "ethernet")], ids=lambda u: u.kind
)
def test_a_redial_recreates_the_uplink_and_pingu_takes_it_again(
    lab_factory: LabFactory, daemons: Daemons, modem: Uplink
) -> None:
    lab = lab_factory(["wan1", modem])
    proto = "boot" if modem.kind == "p2p" else "dhcp"
    gateway = None if modem.kind == "p2p" else lab.gateway("modem")
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("modem", metric=1025, proto=proto)
    pingu = daemons.start(lab, fast_config(lab, {"wan1": 100, "modem": 200}))
    both = {"wan1": (lab.gateway("wan1"), 100), "modem": (gateway, 200)}
    pingu.until(lambda: pingu.own_routes() == both, "pingu's routes on wan1 and the modem")
    before = lab.ifindex("modem")

    mark = pingu.mark()
    lab.delete_uplink("modem")
    pingu.wait_log(r" modem up -> down: ", after=mark)
    assert pingu.own_routes() == {"wan1": both["wan1"]}

    after = lab.recreate_uplink("modem")
    assert after != before
    lab.dhcp_add("modem", metric=1025, proto=proto)
    pingu.until(lambda: pingu.own_routes() == both, "pingu's route on the new modem interface")
    assert [r for r in lab.default_routes() if r.oif == "modem" and r.proto != pingu.proto] == []
    pingu.wait_log(r" modem: captured default ", after=mark)
    pingu.wait_log(r" modem down -> up: ", after=mark)

    # pingu probes the new interface: its rounds fail when that uplink's upstream goes.
    lab.cut_upstream("modem")
    pingu.until(lambda: "modem" not in pingu.own_routes(), "the new modem's route removed")
    lab.restore_upstream("modem")
    pingu.until(lambda: pingu.own_routes() == both, "the new modem's route back")


def foreign(lab: Lab) -> set[Route]:
    """Every route of tables main and 100 that pingu may not touch: all but its own in table
    main and the default routes there of the uplinks it was told about (which it captures)."""
    return {
        r
        for r in lab.routes(254) + lab.routes(100)
        if not (r.table == 254 and (r.proto == 136 or (r.is_default and r.oif in ("wan1", "wan2"))))
    }


def test_routes_pingu_does_not_own_stay_through_capture_failover_and_stop(
    lab_factory: LabFactory, daemons: Daemons
) -> None:
    lab = lab_factory(["wan1", "wan2", "wan3"])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    lab.dhcp_add("wan3", metric=1026)  # a default route on an uplink pingu is not told of
    for route in (
        "default via 100.64.3.1 dev wan3 proto static metric 50",
        "198.18.0.0/15 via 100.64.1.1 dev wan1 proto static",  # not a default route
        "default via 100.64.1.1 dev wan1 table 100 proto dhcp",  # another table
        "default via 100.64.2.1 dev wan2 table 100 proto 136 metric 200",  # pingu's proto too
    ):
        lab.run("daemon", ["ip", "route", "add", *route.split()])
    untouchable = foreign(lab)
    assert len([r for r in untouchable if r.is_default]) == 4, untouchable

    pingu = daemons.start(lab, fast_config(lab, {"wan1": 100, "wan2": 200}))
    both = {"wan1": (lab.gateway("wan1"), 100), "wan2": (lab.gateway("wan2"), 200)}
    pingu.until(lambda: pingu.own_routes() == both, "pingu's routes on wan1 and wan2")
    pingu.until(
        lambda: not [r for r in lab.default_routes() if r.proto == RTPROT_DHCP and r.oif != "wan3"],
        "the DHCP routes of wan1 and wan2 captured",
    )
    assert foreign(lab) == untouchable

    lab.cut_upstream("wan1")
    pingu.until(lambda: "wan1" not in pingu.own_routes(), "failover: wan1's route removed")
    assert foreign(lab) == untouchable
    lab.restore_upstream("wan1")
    pingu.until(lambda: pingu.own_routes() == both, "failback: wan1's route back")
    assert foreign(lab) == untouchable

    assert pingu.stop() == 0
    assert foreign(lab) == untouchable
    assert not [r for r in lab.routes(254) if r.proto == 136], "pingu left its routes"
    assert not pingu.find_log(r"wan3|198\.18\.|table 100")
