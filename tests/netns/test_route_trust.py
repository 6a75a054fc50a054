"""The real daemon and the box's only way out: no transition without a default route,
captured routes kept until pingu's replacement is in (and put back whole, all of them), a
route replaced in place or flushed without a notification repaired, py-pingu's gateways
file taken, and the up/down hooks following the uplink's health."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pingu.lab import Lab, Route
from tests.netns.conftest import LabFactory
from tests.netns.daemon import PROTO, Daemons, RunningDaemon, until, write_script
from tests.netns.route_watch import DefaultRouteWatch

pytestmark = pytest.mark.netns

FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
DHCP, STATIC = 16, 4
T1, T2 = "203.0.113.10", "203.0.113.11"


def fast_config(lab: Lab, metrics: dict[str, int], **top: Any) -> dict[str, Any]:
    interfaces = {name: {"metric": metric, **FAST} for name, metric in metrics.items()}
    return {"host": lab.targets[0], "period": 0.5, **top, "interfaces": interfaces}


def routes_of(lab: Lab, proto: int) -> list[Route]:
    return [r for r in lab.default_routes() if r.proto == proto]


def whole(route: Route) -> tuple[object, ...]:
    """Everything of a route a restore must give back."""
    return (route.oif, route.gateway, route.metric, route.proto, route.scope, route.flags,
            route.prefsrc, route.metrics)  # fmt: skip


# -- 5: keep_best makes before it breaks --------------------------------------------------


def test_keep_best_installs_the_kept_route_before_removing_the_failed_one(
    lab_factory: LabFactory, daemons: Daemons
) -> None:
    lab = lab_factory(["wan1", "wan2"], targets=[T1, T2])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    config = fast_config(lab, {"wan1": 100, "wan2": 200}, when_all_down="keep_best")
    # wan2 probes its own target, answered late: its rounds fail on delay, without loss.
    config["interfaces"]["wan1"]["host"] = T1
    config["interfaces"]["wan2"].update(host=T2, timeout=1000, max_delay=200)
    lab.set_delay(T2, 400)
    pingu = daemons.start(lab, config)
    pingu.until(lambda: set(pingu.own_routes()) == {"wan1"}, "only wan1 routed")
    pingu.wait_log(r" wan2 up -> down: ")

    with DefaultRouteWatch(lab) as watch:
        lab.cut_upstream("wan1")  # the last routed uplink fails, and loses more than wan2
        pingu.until(lambda: set(pingu.own_routes()) == {"wan2"}, "wan2 kept as a last resort")
        watch.settle()
    pingu.wait_log(r"ALL UPLINKS DOWN: keeping wan2's route as a last resort")
    tables = watch.tables()
    assert len(tables) >= 3, watch.changes  # wan2's route added, wan1's removed
    assert all(tables), f"a moment without any default route: {watch.changes}"


# -- 6: never delete a captured route before pingu's is in; onlink and source copied -------


def test_an_onlink_route_is_captured_with_its_onlink_and_source_and_restored(
    lab_factory: LabFactory, daemons: Daemons
) -> None:
    # The layout of cloud VMs: the gateway is outside the uplink's subnet.
    lab = lab_factory(["wan1"], targets=[T1])
    local = lab.local_address("wan1")
    lab.dhcp_add("wan1", "192.0.2.1", metric=1024, options=f"onlink src {local}")
    (dhcp,) = routes_of(lab, DHCP)
    pingu = daemons.start(lab, fast_config(lab, {"wan1": 100}), verbose=True)
    pingu.until(lambda: not routes_of(lab, DHCP), "the DHCP route captured")
    (own,) = routes_of(lab, PROTO)
    assert (own.gateway, own.metric, own.flags, own.prefsrc) == (
        "192.0.2.1",
        100,
        ("onlink",),
        local,
    )
    pingu.wait_log(r" wan1: round passed: ")  # probes go through the off-subnet gateway
    assert pingu.stop() == 0
    assert [whole(r) for r in lab.default_routes()] == [whole(dhcp)]


def test_a_refused_replacement_leaves_the_captured_route_in_place(
    lab_factory: LabFactory, daemons: Daemons
) -> None:
    lab = lab_factory(["wan1"], targets=[T1])
    lab.dhcp_add("wan1", "192.0.2.1", metric=1024, options="onlink")  # the ISP answers there
    # A route pingu cannot copy: its gateway was reachable through a host route when it
    # was added (no onlink), and is not any more. The kernel keeps it, refuses a new one.
    host_route = ["192.0.2.1/32", "dev", "wan1", "scope", "link"]
    lab.run("daemon", ["ip", "route", "add", *host_route])
    lab.run("daemon", ["ip", "route", "del", "default", "dev", "wan1"])
    lab.run("daemon", ["ip", "route", "add", "default", "via", "192.0.2.1", "dev", "wan1",
                       "proto", "dhcp", "metric", "1024"])  # fmt: skip
    lab.run("daemon", ["ip", "route", "del", *host_route])
    (dhcp,) = lab.default_routes()
    pingu = daemons.start(lab, fast_config(lab, {"wan1": 100}), verbose=True)
    pingu.wait_log(r"route change refused by the kernel: append default via 192\.0\.2\.1 ")
    pingu.wait_log(r" wan1: round passed: ", count=2)
    # The DHCP route stays: the box keeps the way out it had.
    assert [whole(r) for r in lab.default_routes()] == [whole(dhcp)]
    assert pingu.stop() == 0
    assert [whole(r) for r in lab.default_routes()] == [whole(dhcp)]


# -- 7: captured routes come back whole, all of them -------------------------------------


def test_every_captured_route_comes_back_whole_and_pingus_carries_the_mtu(
    lab_factory: LabFactory, daemons: Daemons
) -> None:
    lab = lab_factory(["wan1"], targets=[T1])
    local = lab.local_address("wan1")
    lab.dhcp_add("wan1", metric=1024, options=f"mtu 1400 advmss 1360 initcwnd 10 src {local}")
    lab.run("daemon", ["ip", "route", "add", "default", "via", lab.gateway("wan1"), "dev",
                       "wan1", "proto", "static", "metric", "7", "mtu", "1280"])  # fmt: skip
    before = sorted(whole(r) for r in lab.default_routes())
    assert len(before) == 2
    pingu = daemons.start(lab, fast_config(lab, {"wan1": 100}))
    pingu.until(lambda: not routes_of(lab, DHCP) and not routes_of(lab, STATIC), "both captured")
    (own,) = routes_of(lab, PROTO)
    # pingu's route copies the attributes of one of the routes it was learned from.
    assert (own.prefsrc, own.metrics) in {
        (local, (("advmss", 1360), ("initcwnd", 10), ("mtu", 1400))),
        (None, (("mtu", 1280),)),
    }
    assert pingu.stop() == 0
    assert sorted(whole(r) for r in lab.default_routes()) == before


# -- 8: a DHCP client replacing pingu's route in place -----------------------------------


def test_a_client_replacing_pingus_route_in_place_is_captured_and_pingus_put_back(
    lab_factory: LabFactory, daemons: Daemons
) -> None:
    lab = lab_factory(["wan1"], targets=[T1])
    lab.dhcp_add("wan1", metric=100)  # the client uses the metric pingu is told to use
    pingu = daemons.start(lab, fast_config(lab, {"wan1": 100}))
    pingu.until(lambda: pingu.own_routes() == {"wan1": (lab.gateway("wan1"), 100)}, "captured")
    pingu.until(lambda: not routes_of(lab, DHCP), "the DHCP route deleted")
    pingu.wait_ready()
    mark = pingu.mark()
    # At its renewal, the client adds its route with NLM_F_REPLACE: the kernel swaps it for
    # pingu's (same slot: table, tos, metric), and tells of the new route only.
    replacing = ["ip", "route", "replace", "default", "via", lab.gateway("wan1"), "dev", "wan1",
                 "proto", "dhcp", "metric", "100"]  # fmt: skip
    with DefaultRouteWatch(lab) as watch:
        lab.run("daemon", replacing)
        pingu.wait_log(
            r" wan1: table repaired: pingu's default via .* was replaced by ", after=mark
        )
        pingu.until(lambda: not routes_of(lab, DHCP), "the replacing route captured in turn")
        watch.settle()
    assert pingu.own_routes() == {"wan1": (lab.gateway("wan1"), 100)}
    assert all(watch.tables()), watch.changes
    assert pingu.stop() == 0
    restored = {(r.gateway, r.metric, r.proto) for r in lab.default_routes()}
    assert restored == {(lab.gateway("wan1"), 100, DHCP)}


# -- 9: the table re-read: routes flushed without a notification ----------------------------


def test_a_route_flushed_without_a_notification_is_put_back(
    lab_factory: LabFactory, daemons: Daemons
) -> None:
    lab = lab_factory(["wan1"], targets=[T1])
    lab.dhcp_add("wan1", metric=1024)
    config = fast_config(lab, {"wan1": 100}, period=30)  # no round comes to the rescue
    pingu = daemons.start(lab, config)
    own = {"wan1": (lab.gateway("wan1"), 100)}
    pingu.until(lambda: pingu.own_routes() == own, "captured")
    pingu.wait_ready()
    mark = pingu.mark()
    # Some DHCP clients remove and re-add the address at a renewal: the kernel flushes
    # every route through it, and sends no RTM_DELROUTE for them.
    address = f"{lab.local_address('wan1')}/24"
    lab.run("daemon", ["ip", "addr", "del", address, "dev", "wan1"])
    lab.run("daemon", ["ip", "addr", "add", address, "dev", "wan1"])
    pingu.until(lambda: pingu.own_routes() == own, "pingu's route back")
    pingu.wait_log(r" wan1: table repaired: pingu's default via .* is missing", after=mark)


# -- 1: py-pingu's gateways file ---------------------------------------------------------------


def test_gateways_file_gateways_are_probed_then_routed_and_the_file_kept_up_to_date(
    lab_factory: LabFactory, daemons: Daemons, tmp_path: Path
) -> None:
    lab = lab_factory(["wan1", "wan2"], targets=[T1])
    gw_file = tmp_path / "gw.json"
    # What py-pingu left: wan1's gateway, and a wan2 gateway nobody answers on any more.
    gw_file.write_text(json.dumps({"wan1": lab.gateway("wan1"), "wan2": "100.64.2.99"}))
    config = fast_config(lab, {"wan1": 100, "wan2": 200}, gateways_file=str(gw_file))
    pingu = daemons.start(lab, config)
    pingu.wait_log(r"gateways file .*gw\.json: took wan1: gateway 100\.64\.1\.1; wan2: gateway")
    pingu.until(lambda: pingu.own_routes() == {"wan1": (lab.gateway("wan1"), 100)}, "wan1")
    pingu.wait_log(r" wan2: round failed: ")
    assert "wan2" not in pingu.own_routes()  # never routed through the stale gateway
    lab.dhcp_add("wan2", metric=1025)  # a new lease: the file follows
    until(lambda: json.loads(gw_file.read_text()).get("wan2") == lab.gateway("wan2"), "written")
    assert json.loads(gw_file.read_text()) == {
        "wan1": lab.gateway("wan1"),
        "wan2": lab.gateway("wan2"),
    }
    pingu.until(lambda: "wan2" in pingu.own_routes(), "wan2 routed")


# -- 12: hooks follow the uplink's health ------------------------------------------------------


def hook(tmp_path: Path, name: str) -> tuple[str, Path]:
    record = tmp_path / f"{name}.runs"
    script = write_script(
        tmp_path / f"{name}.sh",
        "#!/bin/sh\n"
        f'echo "$PINGU_EVENT $PINGU_INTERFACE $PINGU_OLD_STATE->$PINGU_STATE" >> {record}\n',
    )
    return script, record


def lines(record: Path) -> list[str]:
    return record.read_text().splitlines() if record.exists() else []


def test_hooks_follow_health_even_when_keep_best_keeps_the_route(
    lab_factory: LabFactory, daemons: Daemons, tmp_path: Path
) -> None:
    lab = lab_factory(["wan1"], targets=[T1])
    lab.dhcp_add("wan1", metric=1024)
    up, up_runs = hook(tmp_path, "up")
    down, down_runs = hook(tmp_path, "down")
    config = fast_config(lab, {"wan1": 100}, when_all_down="keep_best")
    config["interfaces"]["wan1"].update(up_script=up, down_script=down)
    pingu: RunningDaemon = daemons.start(lab, config)
    pingu.until(lambda: "wan1" in pingu.own_routes(), "wan1 routed")
    pingu.wait_ready()
    lab.cut_upstream("wan1")
    until(lambda: lines(down_runs) == ["down wan1 up->down"], "the down hook")
    assert "wan1" in pingu.own_routes()  # the route stays, as the last resort
    assert lines(up_runs) == []
    lab.restore_upstream("wan1")
    until(lambda: lines(up_runs) == ["up wan1 down->up"], "the up hook")
    assert lines(down_runs) == ["down wan1 up->down"]
