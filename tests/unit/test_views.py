"""The read side without a daemon: the status document, the systemd line, the SIGUSR1 dump
and the log lines of a decision, from the core's frozen view."""

from __future__ import annotations

import dataclasses
import json

from pingu.domain.commands import DeleteCapturedRoute, InstallOwnRoute, RemoveOwnRoute
from pingu.domain.core import Core
from pingu.domain.events import ProbeFinished, RouteAppeared
from pingu.domain.model import Family
from pingu.domain.views import (
    Clocks,
    Level,
    Line,
    narrate,
    state_dump,
    status_document,
    summary_line,
)
from pingu.entrypoints.status import render
from tests.unit.fakes import TARGET, TARGET6, Driver, config, dhcp_route, round_result, uplink
from tests.unit.test_core import GW1, GW2, own, two_uplinks

CLOCKS = Clocks(started_mono=1000.0, started_wall=1_800_000_000.0)


def test_the_status_document_tells_each_uplink_from_the_view() -> None:
    driver = two_uplinks(reset_script="/sbin/reset")
    driver.capture("wan1", GW1)
    driver.capture("wan2", GW2)
    driver.clock.advance(2.0)
    driver.fail("wan2")
    status = status_document(
        driver.core.view(), now=driver.clock.now, clocks=CLOCKS, version="9.9", pid=42
    )
    assert (status["status_version"], status["version"], status["pid"]) == (1, "9.9", 42)
    assert status["started_at"] == "2027-01-15T08:00:00+00:00"
    assert status["uptime_s"] == 2.0
    uplinks = status["uplinks"]
    assert isinstance(uplinks, list)
    wan1, wan2 = uplinks
    assert (wan1["name"], wan1["state"], wan1["route_installed"]) == ("wan1", "up", True)
    assert (wan2["state"], wan2["route_installed"], wan2["gateway"]) == ("down", False, GW2)
    assert wan2["why"] == "203.0.113.10: 5/5 lost, no reply"
    assert wan2["last_round"]["targets"] == [
        {"address": "203.0.113.10", "sent": 5, "lost": 5, "abandoned": 0, "avg_ms": None,
         "max_ms": None}
    ]  # fmt: skip
    assert wan2["reset_script"] == {
        "path": "/sbin/reset",
        "last_run": "2027-01-15T08:00:02+00:00",
        "running": True,
    }
    assert wan2["counters"]["echoes_lost"] == 5
    assert wan2["counters"]["state_changes"] == 1
    assert wan2["counters"]["reset_script_runs"] == 1


def test_the_summary_line_and_the_state_dump() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.capture("wan2", GW2)
    driver.fail("wan2")
    view = driver.core.view()
    assert summary_line(view) == "1/2 uplinks routed: wan1; down: wan2"
    assert state_dump(view) == [
        f"wan1: up, gateway {GW1}, route {own('wan1', GW1, 100).describe()}, last verdict: "
        "none yet",
        f"wan2: down, gateway {GW2}, route none, last verdict: 203.0.113.10: 5/5 lost, no reply",
    ]


def test_a_state_change_tells_of_its_route_changes_on_its_own_line() -> None:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    core: Core = driver.core
    failed = ProbeFinished("wan1", round_result(received=0), driver.rounds["wan1"])
    decision = core.handle(failed, driver.clock.now)
    narration = narrate(decision.actions, decision.reports, core.view())
    assert Line(Level.INFO, "wan1: round failed: 203.0.113.10: 5/5 lost, no reply") in (
        narration.reports
    )
    change = next(line for line in narration.reports if " -> " in line.text)
    assert change == Line(
        Level.WARNING,
        f"wan1 up -> down: 203.0.113.10: 5/5 lost, no reply via {GW1}; route metric 100 removed"
        " (event 1)",
    )
    removal = decision.actions.index(RemoveOwnRoute(own("wan1", GW1, 100)))
    assert narration.actions[removal] == Line(
        Level.DEBUG, f"removed {own('wan1', GW1, 100).describe()}"
    )


def test_actions_no_state_change_tells_of_are_logged_at_info() -> None:
    driver = two_uplinks()
    route = dhcp_route("wan1", GW1)
    decision = driver.core.handle(RouteAppeared(route), driver.clock.now)
    narration = narrate(decision.actions, decision.reports, driver.core.view())
    assert narration.reports[0] == Line(
        Level.INFO, f"wan1: captured {route.describe()} (new gateway {GW1})"
    )
    install = decision.actions.index(InstallOwnRoute(own("wan1", GW1, 100)))
    assert narration.actions[install] == Line(
        Level.INFO, f"installed {own('wan1', GW1, 100).describe()}"
    )
    deleted = narrate([DeleteCapturedRoute(route)], [], driver.core.view()).actions
    assert deleted == (Line(Level.DEBUG, f"deleted captured {route.describe()}"),)


def test_pingu_status_shows_each_family_of_a_dual_stack_uplink_as_a_block() -> None:
    targets = (TARGET, TARGET6)
    driver = Driver(config(uplink("wan1", 100, targets=targets), uplink("wan2", 200)))
    driver.link("wan1")
    driver.capture("wan1", GW1)
    ra = dataclasses.replace(dhcp_route("wan1", "fe80::1"), proto=9, family=Family.IPV6)
    driver.send(RouteAppeared(ra))
    driver.link("wan2")
    driver.capture("wan2", GW2)
    driver.finish("wan1")
    driver.finish("wan1", round_result(received=0, target=TARGET6), Family.IPV6)
    document = status_document(
        driver.core.view(), now=driver.clock.now, clocks=CLOCKS, version="9.9", pid=42
    )

    lines = render(json.loads(json.dumps(document)), now=CLOCKS.started_wall).splitlines()

    assert lines[0] == (
        "pingu 9.9 | pid 42 | up 0.0s | 2 of 3 uplink families routed"
        " | ALL DOWN in ipv6: no route left"
    )
    ipv4 = lines.index("wan1/ipv4  up for 0.0s")
    ipv6 = lines.index("wan1/ipv6  down for 0.0s")
    assert lines[ipv4 + 2 : ipv4 + 4] == [
        f"  gateway      {GW1}",
        "  route        installed, metric 100",
    ]
    assert lines[ipv6 + 1] == f"  why          {TARGET6}: 5/5 lost, no reply"
    assert lines[ipv6 + 2 : ipv6 + 4] == [
        "  gateway      fe80::1",
        "  route        not installed (metric 100)",
    ]
    assert "wan2  up for 0.0s" in lines  # an IPv4-only uplink is shown as before
