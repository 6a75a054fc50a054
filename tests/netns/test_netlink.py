"""The netlink adapter on a real kernel, in the lab: capture, ownership, idempotence, overflow."""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from pyroute2 import AsyncIPRoute

from pingu.adapters.clock import MonotonicClock
from pingu.adapters.netlink import NetlinkRouteTable
from pingu.domain.commands import (
    RunScript,
    StartProbe,
)
from pingu.domain.config import Config, UplinkConfig
from pingu.domain.events import Event, LinkChanged, LinkVanished, RouteAppeared, RouteVanished
from pingu.domain.model import RoundResult, Route, TargetResult
from pingu.domain.ports import Resync, RouteChangeFailed
from pingu.entrypoints.runtime import Daemon
from pingu.lab import Lab, Uplink
from tests.netns.conftest import LabFactory, run_in_namespace

PROTO = 136
TARGET = "203.0.113.10"
WAIT_S = 10.0


class PassingProber:
    """Every round passes: these scenarios are about routes, not probes."""

    def __init__(self) -> None:
        self.rounds: list[StartProbe] = []

    async def run_round(self, probe: StartProbe) -> RoundResult:
        self.rounds.append(probe)
        return RoundResult((TargetResult(TARGET, 1, 1, (1.0,)),))


class NoScripts:
    async def run(self, script: RunScript) -> int | None:
        return 0


async def until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll `check` (bounded); fail with `what` when it never holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        await asyncio.sleep(0.02)


def defaults(lab: Lab) -> set[tuple[str | None, str | None, int, int, int]]:
    """(oif, gateway, metric, proto, scope) of every default route in table main."""
    return {(r.oif, r.gateway, r.metric, r.proto, r.scope) for r in lab.default_routes()}


@asynccontextmanager
async def daemon_in(
    lab: Lab,
    metrics: dict[str, int],
    *,
    table: NetlinkRouteTable | None = None,
    table_check_interval: float | None = 10.0,
) -> AsyncIterator[Daemon]:
    """The daemon's shell with the real netlink adapter, inside the lab's daemon namespace."""
    uplinks = tuple(
        UplinkConfig(name=name, metric=metric, targets=(TARGET,), period=30.0)
        for name, metric in metrics.items()
    )
    table = table or NetlinkRouteTable()
    config = Config(proto=PROTO, uplinks=uplinks, table_check_interval=table_check_interval)
    daemon = Daemon(config, table, PassingProber(), NoScripts(), MonotonicClock())
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, WAIT_S)
        await table.close()


async def collect(table: NetlinkRouteTable, into: list[Event | Resync]) -> None:
    async for event in table.events():
        into.append(event)


def default_route_events(events: list[Event | Resync], ifname: str) -> list[Route]:
    return [
        e.route
        for e in events
        if isinstance(e, RouteAppeared) and e.route.ifname == ifname and e.route.dst_len == 0
    ]


def test_dhcp_route_event_carries_its_attributes_and_is_deleted_exactly(
    lab_factory: LabFactory,
) -> None:
    lab = lab_factory(["wan1", "wan2"])

    async def scenario() -> None:
        table = NetlinkRouteTable()
        events: list[Event | Resync] = []
        await table.snapshot()  # names the links
        monitor = asyncio.create_task(collect(table, events))
        await until(lambda: any(isinstance(e, Resync) for e in events), "subscribed")
        lab.dhcp_add("wan1", metric=1024)
        lab.dhcp_add("wan2", metric=1024 + 1)
        await until(lambda: bool(default_route_events(events, "wan1")), "wan1's DHCP route")
        (route,) = default_route_events(events, "wan1")
        assert route == Route(
            ifindex=lab.ifindex("wan1"),
            ifname="wan1",
            gateway=lab.gateway("wan1"),
            metric=1024,
            proto=16,
            table=254,
            dst_len=0,
            scope=0,
        )
        await table.delete_foreign(route)
        await table.delete_foreign(route)  # already gone: not an error
        assert defaults(lab) == {("wan2", lab.gateway("wan2"), 1025, 16, 0)}
        monitor.cancel()
        await table.close()

    run_in_namespace(lab.daemon_ns, scenario())


def test_daemon_captures_and_replaces_with_its_own_route(lab_factory: LabFactory) -> None:
    lab = lab_factory(["wan1", Uplink("ppp0", "p2p")])

    async def scenario() -> None:
        async with daemon_in(lab, {"wan1": 100, "ppp0": 300}):
            lab.dhcp_add("wan1", metric=1024)
            lab.dhcp_add("ppp0", proto="boot", metric=50)
            wanted = {
                ("wan1", lab.gateway("wan1"), 100, PROTO, 0),
                ("ppp0", None, 300, PROTO, 253),
            }
            await until(lambda: defaults(lab) == wanted, f"only pingu's routes: {wanted}")
        # Stopping restores the captured routes as they were.
        assert defaults(lab) == {
            ("wan1", lab.gateway("wan1"), 1024, 16, 0),
            ("ppp0", None, 50, 3, 253),
        }

    run_in_namespace(lab.daemon_ns, scenario())


def test_routes_pingu_does_not_own_are_left_alone(lab_factory: LabFactory) -> None:
    lab = lab_factory(["wan1", "wan2"])
    gw1, gw2 = lab.gateway("wan1"), lab.gateway("wan2")
    leave = [
        f"default via {gw2} dev wan2 proto dhcp metric 10",  # unconfigured interface
        f"198.18.0.0/24 via {gw1} dev wan1 proto dhcp",  # not a default route
        f"default via {gw1} dev wan1 proto dhcp table 100",  # another table
        f"default via {gw1} dev wan1 proto {PROTO} metric 100",  # pingu's own
    ]

    def table_100() -> set[tuple[str | None, str | None]]:
        return {(r.oif, r.gateway) for r in lab.routes(table=100)}

    async def scenario() -> None:
        async with daemon_in(lab, {"wan1": 100}) as daemon:
            for spec in leave:
                lab.run("daemon", ["ip", "route", "add", *spec.split()])
            await until(lambda: daemon.core.view().uplink("wan1").route is not None, "adoption")
            await asyncio.sleep(0.5)  # give a wrong deletion every chance to happen
            assert defaults(lab) == {("wan2", gw2, 10, 16, 0), ("wan1", gw1, 100, PROTO, 0)}
            assert any(r.dst == "198.18.0.0" for r in lab.routes())
            assert table_100() == {("wan1", gw1)}

    run_in_namespace(lab.daemon_ns, scenario())


def test_install_replace_and_remove_are_idempotent(lab_factory: LabFactory) -> None:
    lab = lab_factory(["wan1"])
    index = lab.ifindex("wan1")
    first = Route(index, "wan1", lab.gateway("wan1"), 100, PROTO)
    lab.run("isp:wan1", ["ip", "addr", "add", "100.64.1.9/24", "dev", "cust"])
    moved = Route(index, "wan1", "100.64.1.9", 100, PROTO)

    async def scenario() -> None:
        await until(lambda: lab.carrier("wan1"), "wan1 with carrier")
        table = NetlinkRouteTable()
        for _ in range(2):
            await table.install(first)
        assert defaults(lab) == {("wan1", first.gateway, 100, PROTO, 0)}
        for _ in range(2):  # a new gateway: the new route first, then the old one removed
            await table.install(moved)
            await table.remove(first)
        assert defaults(lab) == {("wan1", "100.64.1.9", 100, PROTO, 0)}
        for _ in range(2):
            await table.remove(moved)
        assert defaults(lab) == set()
        await table.close()

    run_in_namespace(lab.daemon_ns, scenario())


def test_foreign_route_with_pingus_metric_survives_pingus_install(lab_factory: LabFactory) -> None:
    lab = lab_factory(["wan1", "wan2"])
    own = Route(lab.ifindex("wan1"), "wan1", lab.gateway("wan1"), 100, PROTO)
    lab.run(
        "daemon", ["ip", "route", "add", "default", "via", lab.gateway("wan2"), "metric", "100"]
    )

    async def scenario() -> None:
        table = NetlinkRouteTable()
        await table.install(own)
        await table.remove(own)
        await table.close()

    run_in_namespace(lab.daemon_ns, scenario())
    assert defaults(lab) == {("wan2", lab.gateway("wan2"), 100, 3, 0)}


def flood_batch(count: int, dev: str, gateway: str, *, defaults: bool) -> str:
    """`ip -batch` text adding then deleting `count` routes: /32s of 198.18.0.0/15 in table
    main, or (``defaults``) default routes in tables 1000 and up, which pingu must hear of."""
    adds, dels = [], []
    for i in range(count):
        if defaults:
            what = f"default via {gateway} dev {dev} table {1000 + i}"
        else:
            what = f"198.{18 + i // 65536}.{i // 256 % 256}.{i % 256}/32 via {gateway} dev {dev}"
        adds.append(f"route add {what} proto static")
        dels.append(f"route del {what} proto static")
    return "\n".join(adds + dels) + "\n"


def flood_then_capture(lab: Lab, before: str, after: str) -> NetlinkRouteTable:
    """Flood while the daemon's loop is blocked, add a DHCP route, flood again: the route
    must end up captured. Returns the daemon's route table (for its resync count)."""
    tables: list[NetlinkRouteTable] = []

    async def scenario() -> None:
        async with daemon_in(lab, {"wan1": 100}) as daemon:
            await until(lambda: daemon.core.view().uplink("wan1").link.present, "first dump")
            batch = ["ip", "netns", "exec", lab.daemon_ns, "ip", "-batch", "-"]
            # The flood runs while the event loop is blocked, as a stalled daemon would be.
            subprocess.run(batch, input=before, text=True, check=True, timeout=120)
            lab.dhcp_add("wan1", metric=1024)
            subprocess.run(batch, input=after, text=True, check=True, timeout=120)
            wanted = {("wan1", lab.gateway("wan1"), 100, PROTO, 0)}
            await until(lambda: defaults(lab) == wanted, "the DHCP route captured", 30)
            table = daemon.route_table
            assert isinstance(table, NetlinkRouteTable)
            tables.append(table)

    run_in_namespace(lab.daemon_ns, scenario())
    return tables[0]


def test_default_route_flood_overflow_ends_with_the_dhcp_route_captured(
    lab_factory: LabFactory,
) -> None:
    lab = lab_factory(["wan1", "wan2"])
    half = 25_000
    before = flood_batch(half, "wan2", lab.gateway("wan2"), defaults=True)
    after = before.replace(" proto static", " proto boot")
    table = flood_then_capture(lab, before, after)
    assert table.resyncs >= 1, "50,000 default-route events should have overflowed the monitor"


def test_unrelated_routes_are_dropped_in_the_kernel_no_overflow(lab_factory: LabFactory) -> None:
    """100,000 changes of non-default routes: the monitor's filter drops them all, so the
    socket never overflows (the default-route flood above, half the size, does)."""
    lab = lab_factory(["wan1", "wan2"])
    half = 50_000
    before = flood_batch(half, "wan2", lab.gateway("wan2"), defaults=False)
    after = before.replace(" proto static", " proto boot")
    table = flood_then_capture(lab, before, after)
    assert table.resyncs == 0


def test_uplink_deleted_and_recreated_is_followed(lab_factory: LabFactory) -> None:
    lab = lab_factory(["wan1", Uplink("ppp0", "p2p")])

    async def scenario() -> None:
        async with daemon_in(lab, {"wan1": 100, "ppp0": 300}) as daemon:
            lab.dhcp_add("ppp0")
            await until(lambda: ("ppp0", None, 300, PROTO, 253) in defaults(lab), "ppp0 route")
            old = lab.ifindex("ppp0")
            lab.delete_uplink("ppp0")
            await until(lambda: not daemon.core.view().uplink("ppp0").link.present, "ppp0 gone")
            new = lab.recreate_uplink("ppp0")
            assert new != old
            lab.dhcp_add("ppp0")
            await until(lambda: ("ppp0", None, 300, PROTO, 253) in defaults(lab), "back")
            ppp0 = daemon.core.view().uplink("ppp0")
            assert ppp0.link.ifindex == new
            assert ppp0.route is not None
            assert ppp0.route.ifindex == new

    run_in_namespace(lab.daemon_ns, scenario())


def test_link_events_follow_carrier(lab_factory: LabFactory) -> None:
    lab = lab_factory(["wan1"])

    async def scenario() -> None:
        table = NetlinkRouteTable()
        events: list[Event | Resync] = []
        await until(lambda: lab.carrier("wan1"), "wan1 with carrier")
        snapshot = await table.snapshot()
        assert any(link.ifname == "wan1" and link.carrier for link in snapshot.links)
        monitor = asyncio.create_task(collect(table, events))

        def carrier(up: bool) -> bool:
            return any(
                isinstance(e, LinkChanged) and e.ifname == "wan1" and e.carrier is up
                for e in events
            )

        await until(lambda: any(isinstance(e, Resync) for e in events), "subscribed")
        lab.carrier_down("wan1")
        await until(lambda: carrier(False), "carrier loss event")
        changed = [e for e in events if isinstance(e, LinkChanged) and e.ifname == "wan1"]
        assert changed[-1].address == lab.local_address("wan1")
        assert not changed[-1].point_to_point
        monitor.cancel()
        await table.close()
        assert not any(isinstance(e, LinkVanished) for e in events)

    run_in_namespace(lab.daemon_ns, scenario())


def test_capture_latency(lab_factory: LabFactory, capsys) -> None:
    """100 captures: DHCP route added to deleted (measured, printed, not asserted)."""
    lab = lab_factory(["wan1"])
    gateway = lab.gateway("wan1")

    async def scenario() -> list[float]:
        latencies: list[float] = []
        async with daemon_in(lab, {"wan1": 100}):
            watcher = AsyncIPRoute()
            await watcher.bind(groups=0x40)  # RTMGRP_IPV4_ROUTE
            ipr = AsyncIPRoute()
            index = lab.ifindex("wan1")
            for _ in range(100):
                start = time.monotonic()
                await ipr.route(
                    "add", dst="0.0.0.0/0", gateway=gateway, oif=index, priority=1024, proto=16
                )
                deadline = start + WAIT_S
                gone = False
                while not gone and time.monotonic() < deadline:
                    async with asyncio.timeout(WAIT_S):
                        async for msg in watcher.get():
                            if (
                                msg.get("event") == "RTM_DELROUTE"
                                and msg.get("proto") == 16
                                and msg.get("family") == socket.AF_INET
                            ):
                                gone = True
                assert gone, "a DHCP route was never captured"
                latencies.append((time.monotonic() - start) * 1000)
            watcher.close()
            ipr.close()
        return latencies

    latencies = run_in_namespace(lab.daemon_ns, scenario())
    assert len(latencies) == 100
    with capsys.disabled():
        print(
            f"\ncapture latency over 100 captures: median {statistics.median(latencies):.2f} ms,"
            f" worst {max(latencies):.2f} ms"
        )


def test_off_link_gateway_is_a_clear_error_not_a_crash(lab_factory: LabFactory) -> None:
    lab = lab_factory(["wan1"])
    off_link = Route(lab.ifindex("wan1"), "wan1", "203.0.113.1", 100, PROTO)

    async def scenario() -> str:
        table = NetlinkRouteTable()
        try:
            await table.install(off_link)
        except RouteChangeFailed as error:
            return str(error)
        finally:
            await table.close()
        return "no error"

    message = run_in_namespace(lab.daemon_ns, scenario())
    assert "default via 203.0.113.1 dev wan1" in message
    assert "unreachable" in message.lower() or "invalid gateway" in message.lower()
    assert defaults(lab) == set()


def test_an_own_route_deleted_unseen_during_an_overflow_is_put_back(
    lab_factory: LabFactory,
) -> None:
    lab = lab_factory(["wan1", "wan2"])
    lab.dhcp_add("wan1", metric=1024)
    gateway = lab.gateway("wan1")
    flood = flood_batch(25_000, "wan2", lab.gateway("wan2"), defaults=True)
    mine = ["default", "via", gateway, "dev", "wan1", "proto", str(PROTO), "metric", "100"]

    async def scenario() -> int:
        async with daemon_in(lab, {"wan1": 100}) as daemon:
            own = {("wan1", gateway, 100, PROTO, 0)}
            await until(lambda: defaults(lab) == own, "the DHCP route captured")
            batch = ["ip", "netns", "exec", lab.daemon_ns, "ip", "-batch", "-"]
            # The loop is blocked: the flood fills the monitor's buffer, so the deletion
            # that follows is never told; only a full read can show it.
            subprocess.run(batch, input=flood, text=True, check=True, timeout=120)
            lab.run("daemon", ["ip", "route", "del", *mine])
            assert defaults(lab) == set()
            await until(lambda: defaults(lab) == own, "pingu's route put back", 30)
            table = daemon.route_table
            assert isinstance(table, NetlinkRouteTable)
            return table.resyncs

    assert run_in_namespace(lab.daemon_ns, scenario()) >= 1


class DeafToDeletions(NetlinkRouteTable):
    """A route table whose event stream loses every RTM_DELROUTE, as a notification pingu
    never reads (the periodic check has to find out)."""

    async def events(self) -> AsyncIterator[Event | Resync]:
        async for event in super().events():
            if not isinstance(event, RouteVanished):
                yield event


def test_the_periodic_check_repairs_a_deletion_no_event_told_of(lab_factory: LabFactory) -> None:
    lab = lab_factory(["wan1"])
    lab.dhcp_add("wan1", metric=1024)
    gateway = lab.gateway("wan1")
    mine = ["default", "via", gateway, "dev", "wan1", "proto", str(PROTO), "metric", "100"]

    async def scenario() -> None:
        table = DeafToDeletions()
        async with daemon_in(lab, {"wan1": 100}, table=table, table_check_interval=0.5) as d:
            own = {("wan1", gateway, 100, PROTO, 0)}
            await until(lambda: defaults(lab) == own, "the DHCP route captured")
            lab.run("daemon", ["ip", "route", "del", *mine])
            await asyncio.sleep(0.1)
            assert d.core.view().uplink("wan1").route is not None  # it was not told
            await until(lambda: defaults(lab) == own, "pingu's route put back by a check", 5)

    run_in_namespace(lab.daemon_ns, scenario())
