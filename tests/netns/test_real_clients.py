"""The real daemon next to real DHCP and router-advertisement software (issue 14): the
uplinks' addresses and default routes come from dnsmasq and radvd on the ISPs' side and
from dhcpcd, busybox's udhcpc and the kernel's own RA handling on the daemon's side
(:mod:`pingu.lab.clients`), in both families. Each test follows one client through
start-up capture, renewals, a new gateway, the client restarting, the lease or the router
going, and a failover and failback while the client keeps renewing; what pingu must do
and what the operator must set, found here, is in the README ("Next to DHCP and RA
clients").

Renewals are counted exactly: leases are long (a client renews by itself at half of
one, 5 minutes), so that every renewal is one the test asks for, and radvd advertises
every 3-4 s, so that a window can open and close just after an advertisement; every route
a client adds in a window is matched with what the client says it did, with pingu's
captures and with what the kernel reported (:class:`DefaultRouteWatch`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pingu.lab import (
    DhcpcdClient,
    DnsmasqServer,
    KernelRA,
    Lab,
    LabError,
    RadvdServer,
    UdhcpcClient,
)
from pingu.lab.lab import IPVersion
from tests.netns.conftest import LabFactory
from tests.netns.daemon import PROTO, Daemons, RunningDaemon, write_script
from tests.netns.programs import Programs
from tests.netns.route_watch import DefaultRouteWatch, Seen
from tests.netns.test_dual_stack import leaves_via

pytestmark = pytest.mark.netns

T4, T6 = "203.0.113.10", "2001:db8:ffff::10"
FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
UPLINKS = ("wan1", "wan2")
METRICS = {"wan1": 100, "wan2": 200}
BOOT, RA, DHCP = 3, 9, 16
LINK_LOCAL_GATEWAY = "fe80::1"  # the ISP's only link-local: every RA comes from it
NEW_GATEWAY = "100.64.1.254"
RENEWALS = 3
SIGNAL_TRIES = 3
CLIENT_WAIT = 45.0  # a dhcpcd lease takes ~6 s (its ARP probe); generous under load
# A 10-minute lease: the clients' own renewals (T1, half of it) never come in a test, so
# every renewal is one the test asked for.
QUIET_LEASE: dict[str, Any] = {"lease_time": 600, "renew_after": None, "rebind_after": None}

Own = dict[str, tuple[str | None, int]]


@pytest.fixture
def lab(lab_factory: LabFactory) -> Lab:
    """wan1 and wan2 (ifindex order), no default route: the clients bring them."""
    return lab_factory(list(UPLINKS), targets=[T4, T6])


@pytest.fixture
def programs(lab: Lab) -> Iterator[Programs]:
    running = Programs()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def pingus(programs: Programs, tmp_path: Path) -> Iterator[Daemons]:
    """The test's pingu: stopped (its captured routes restored) before the clients go."""
    with Daemons(tmp_path) as daemons:
        yield daemons


def pingu_config(hosts: list[str], **per_uplink: dict[str, Any]) -> dict[str, Any]:
    interfaces = {
        name: {"metric": metric, **FAST, **per_uplink.get(name, {})}
        for name, metric in METRICS.items()
    }
    return {"host": hosts, "period": 0.5, "interfaces": interfaces}


def foreign(lab: Lab, family: IPVersion, uplink: str | None = None) -> list[Any]:
    """The default routes of the family on the uplinks (or one) that are not pingu's."""
    wanted = UPLINKS if uplink is None else (uplink,)
    return [r for r in lab.default_routes(family=family) if r.proto != PROTO and r.oif in wanted]


def routed(pingu: RunningDaemon, family: IPVersion, want: Own) -> bool:
    """pingu's routes of the family are exactly ``want``, and no client's route is left."""
    return pingu.own_routes(family) == want and not foreign(pingu.lab, family)


def gateways(lab: Lab, family: IPVersion, *uplinks: str) -> Own:
    """pingu's routes of the family through the ISPs' own gateways."""
    return {
        uplink: (lab.gateway(uplink) if family == 4 else LINK_LOCAL_GATEWAY, METRICS[uplink])
        for uplink in uplinks
    }


def capture_line(label: str, gateway: str, proto: int, metric: int | None = None) -> str:
    """pingu's log line of a capture on ``label`` (``wan1``, ``wan1/ipv6``)."""
    uplink = label.split("/", maxsplit=1)[0]
    metric_text = r"\d+" if metric is None else str(metric)
    return (
        rf" {label}: captured default via {gateway} dev {uplink} proto {proto} "
        rf"metric {metric_text}\b.*\((?P<what>new gateway|gateway) {gateway}\)$"
    )


def on(watch: DefaultRouteWatch, lab: Lab, uplink: str) -> Counter[tuple[str, int]]:
    """What the kernel reported of ``uplink``'s default routes: (event, proto) counted."""
    oif = lab.ifindex(uplink)
    return Counter((event, seen.proto) for event, seen, _ in watch.changes if seen.oif == oif)


def pingus_route_in_every_table(watch: DefaultRouteWatch, lab: Lab, uplink: str) -> bool:
    oif = lab.ifindex(uplink)
    return all(any(r.oif == oif and r.proto == PROTO for r in t) for t in watch.tables())


def best_oif(table: frozenset[Seen]) -> int | None:
    """The interface of the default route the kernel uses in ``table`` (lowest metric)."""
    route = min(table, key=lambda r: r.metric, default=None)
    return None if route is None else route.oif


def quiet_after(pingu: RunningDaemon, pattern: str, family: IPVersion, uplink: str) -> None:
    """Until the next capture matching ``pattern`` is logged and the captured route is
    gone: a moment when the client has just acted, the start or end of a window."""
    pingu.wait_log(pattern, 30, after=pingu.mark())
    pingu.until(lambda: not foreign(pingu.lab, family, uplink), "the captured route deleted")


def renew(client: DhcpcdClient) -> None:
    """One renewal of dhcpcd's lease, done (its RENEW hook run). dhcpcd sometimes misses
    a SIGUSR1 that comes while it finishes the previous renewal: asked again, bounded."""
    offset = len(client.log())
    for _ in range(SIGNAL_TRIES):
        client.renew()
        try:
            client.wait_log("received SIGUSR1, renewing", 5, after=offset)
            break
        except LabError:
            continue
    client.wait_log("dhcpcd-run-hooks RENEW", 30, after=offset)


def renew_and_settle(client: DhcpcdClient, watch: DefaultRouteWatch) -> None:
    """RENEWALS renewals of ``client``'s lease, then until the table has been quiet for a
    second (the renewals' route changes are all in)."""
    for _ in range(RENEWALS):
        renew(client)
    watch.settle(quiet_s=1.0)


def client_adds(client: DhcpcdClient, family: int, offset: int) -> int:
    """How many times dhcpcd added a default route of the family since log ``offset``."""
    via = "100.64." if family == 4 else "fe80:"
    return client.log()[offset:].count(f"adding default route via {via}")


def decisions_changed(pingu: RunningDaemon, label: str, after: int) -> list[str]:
    return [d for d in pingu.decisions(label, after=after) if "->" in d]


# -- dhcpcd: DHCPv4 from dnsmasq, and its RAs ---------------------------------------------


def test_dhcpcd_in_both_families_capture_renewals_and_a_failover_while_it_renews(
    lab: Lab, programs: Programs, pingus: Daemons
) -> None:
    """wan1: dhcpcd for DHCPv4 (from dnsmasq) and RAs (radvd's), with its own metric
    (1000 + ifindex). wan2: dhcpcd for IPv4 only, the kernel for radvd's RAs."""
    radvd = {}
    for uplink in UPLINKS:
        programs(DnsmasqServer(lab, uplink, **QUIET_LEASE))
        radvd[uplink] = programs(RadvdServer(lab, uplink))
    wan1 = programs(DhcpcdClient(lab, "wan1"))
    wan2 = programs(DhcpcdClient(lab, "wan2", ipv6=False))
    kernel2 = programs.kernel(KernelRA(lab, "wan2"))
    for client in (wan1, wan2):
        client.wait_default_route(4, CLIENT_WAIT)
    wan1.wait_default_route(6, CLIENT_WAIT)
    kernel2.wait_default_route(6, CLIENT_WAIT)
    own_metric = 1000 + lab.ifindex("wan1")
    assert wan1.default_routes(4)[0].metric == own_metric

    # Start-up: both families captured, pingu's routes in with its metrics and proto.
    pingu = pingus.start(lab, pingu_config([T4, T6]), verbose=True)
    both4, both6 = gateways(lab, 4, *UPLINKS), gateways(lab, 6, *UPLINKS)
    pingu.until(lambda: routed(pingu, 4, both4) and routed(pingu, 6, both6), "all captured")
    pingu.wait_ready()
    pingu.wait_log(capture_line("wan1/ipv4", "100.64.1.1", DHCP, own_metric))
    pingu.wait_log(capture_line("wan1/ipv6", LINK_LOCAL_GATEWAY, RA, own_metric))
    pingu.wait_log(capture_line("wan2/ipv4", "100.64.2.1", DHCP, 1000 + lab.ifindex("wan2")))
    pingu.wait_log(capture_line("wan2/ipv6", LINK_LOCAL_GATEWAY, RA, 1024))
    assert (leaves_via(lab, T4), leaves_via(lab, T6)) == ("wan1", "wan1")

    # Renewals. After a capture, dhcpcd puts its route back at each renewal (IPv4) and
    # each RA (IPv6), and, finding pingu's route where it wants its own, deletes it (it
    # adds its own, then deletes what it takes for its old one): pingu puts it back. One
    # capture per re-add, no more: no fight loop. wan2's pingu routes stay throughout.
    capture4 = capture_line("wan1/ipv4", "100.64.1.1", DHCP, own_metric)
    capture6 = capture_line("wan1/ipv6", LINK_LOCAL_GATEWAY, RA, own_metric)
    quiet_after(pingu, capture6, 6, "wan1")  # the next RA is seconds away
    mark, offset = pingu.mark(), len(wan1.log())
    with DefaultRouteWatch(lab, 4) as watch4, DefaultRouteWatch(lab, 6) as watch6:
        renew_and_settle(wan1, watch4)
        quiet_after(pingu, capture6, 6, "wan1")
        pingu.until(lambda: routed(pingu, 4, both4) and routed(pingu, 6, both6), "settled")
    for family, watch, capture, proto in ((4, watch4, capture4, DHCP), (6, watch6, capture6, RA)):
        re_adds = on(watch, lab, "wan1")[("RTM_NEWROUTE", proto)]
        assert re_adds >= 1, family
        assert re_adds == client_adds(wan1, family, offset), family
        assert on(watch, lab, "wan1") == {
            ("RTM_NEWROUTE", proto): re_adds,  # dhcpcd's route back ...
            ("RTM_DELROUTE", PROTO): re_adds,  # ... pingu's deleted by dhcpcd ...
            ("RTM_DELROUTE", proto): re_adds,  # ... dhcpcd's deleted by pingu ...
            ("RTM_NEWROUTE", PROTO): re_adds,  # ... and pingu's back: once each
        }, watch.changes
        captures = pingu.find_log(capture, after=mark)
        assert [m["what"] for m in captures] == ["gateway"] * re_adds, family
        assert all(watch.tables()), "a moment without any default route"
        assert pingus_route_in_every_table(watch, lab, "wan2")
    assert on(watch4, lab, "wan2") == Counter()
    assert client_adds(wan1, 4, offset) <= 2 * RENEWALS  # no fight loop
    for label in ("wan1/ipv4", "wan1/ipv6", "wan2/ipv4", "wan2/ipv6"):
        assert decisions_changed(pingu, label, mark) == []

    # Failover while dhcpcd keeps renewing: its route, put back on the dead uplink, is
    # deleted at once and never carries traffic (its metric is above wan2's).
    lab.cut_upstream("wan1")
    pingu.until(
        lambda: (
            routed(pingu, 4, gateways(lab, 4, "wan2"))
            and routed(pingu, 6, gateways(lab, 6, "wan2"))
        ),
        "wan1's routes removed in both families",
    )
    pingu.wait_log(r" WARNING wan1/ipv4 up -> down: ")
    pingu.wait_log(r" WARNING wan1/ipv6 up -> down: ")
    assert (leaves_via(lab, T4), leaves_via(lab, T6)) == ("wan2", "wan2")
    quiet_after(pingu, capture6, 6, "wan1")  # an RA came and went: the next is seconds away
    mark, offset = pingu.mark(), len(wan1.log())
    with DefaultRouteWatch(lab, 4) as watch4, DefaultRouteWatch(lab, 6) as watch6:
        renew_and_settle(wan1, watch4)
        assert (leaves_via(lab, T4), leaves_via(lab, T6)) == ("wan2", "wan2")
        quiet_after(pingu, capture6, 6, "wan1")
    for family, watch, capture, proto in ((4, watch4, capture4, DHCP), (6, watch6, capture6, RA)):
        re_adds = client_adds(wan1, family, offset)
        assert re_adds >= 1, family
        assert on(watch, lab, "wan1") == {
            ("RTM_NEWROUTE", proto): re_adds,
            ("RTM_DELROUTE", proto): re_adds,
        }, watch.changes
        assert len(pingu.find_log(capture, after=mark)) == re_adds
        # In every table the box went through, its traffic took wan2.
        assert {best_oif(t) for t in watch.tables()} == {lab.ifindex("wan2")}, family
    assert not foreign(lab, 4, "wan1")
    assert not foreign(lab, 6, "wan1")
    assert decisions_changed(pingu, "wan1/ipv4", mark) == []  # down it stays
    assert not pingu.own_routes(4).get("wan1")

    lab.restore_upstream("wan1")
    pingu.until(lambda: routed(pingu, 4, both4) and routed(pingu, 6, both6), "wan1 back in both")
    assert (leaves_via(lab, T4), leaves_via(lab, T6)) == ("wan1", "wan1")
    assert lab.ping(None, T4).received == lab.ping(None, T6).received == 1

    # The router withdraws itself (router lifetime 0). dhcpcd has the kernel's RA handling
    # off, but pingu hears the advertisement itself: wan1's IPv6 down at once, no failed
    # round; advertised again, dhcpcd's route is back and captured, wan1's IPv6 up.
    assert lab.run("daemon", ["sysctl", "-n", "net.ipv6.conf.wan1.accept_ra"]).stdout == "0\n"
    mark = pingu.mark()
    radvd["wan1"].set_router_lifetime(0)
    pingu.wait_log(r" WARNING wan1/ipv6 up -> down: router fe80::1 withdrew ", 30, after=mark)
    pingu.until(lambda: routed(pingu, 6, gateways(lab, 6, "wan2")), "wan1's IPv6 removed")
    assert (leaves_via(lab, T4), leaves_via(lab, T6)) == ("wan1", "wan2")
    assert not pingu.find_log(r" wan1/ipv6: round failed: ", after=mark)
    radvd["wan1"].set_router_lifetime(30)
    pingu.until(lambda: routed(pingu, 6, both6), "wan1's IPv6 back", 30)
    assert leaves_via(lab, T6) == "wan1"
    assert pingu.stop() == 0
    # Its captured routes back, as dhcpcd made them.
    back = {(r.oif, r.proto, r.metric) for r in lab.default_routes(family=4)}
    assert back == {("wan1", DHCP, own_metric), ("wan2", DHCP, 1000 + lab.ifindex("wan2"))}


def test_dhcpcd_new_gateway_crash_restart_and_lease_gone(
    lab: Lab, programs: Programs, pingus: Daemons
) -> None:
    """dhcpcd in both families on both uplinks, wan1's without ``persistent`` (a stop
    deconfigures: the lease is given up)."""
    servers = {
        uplink: programs(DnsmasqServer(lab, uplink, ra=True, **QUIET_LEASE)) for uplink in UPLINKS
    }
    wan1 = programs(DhcpcdClient(lab, "wan1", persistent=False))
    wan2 = programs(DhcpcdClient(lab, "wan2"))
    for client in (wan1, wan2):
        client.wait_default_route(4, CLIENT_WAIT)
        client.wait_default_route(6, CLIENT_WAIT)
    pingu = pingus.start(lab, pingu_config([T4, T6]), verbose=True)
    both4, both6 = gateways(lab, 4, *UPLINKS), gateways(lab, 6, *UPLINKS)
    pingu.until(lambda: routed(pingu, 4, both4) and routed(pingu, 6, both6), "all captured")
    pingu.wait_ready()

    # A new gateway at a renewal: dhcpcd adds its route via the new one and deletes the
    # one it takes for its old one (pingu's); pingu follows and probes through it.
    mark = pingu.mark()
    server = servers["wan1"]
    server.router = NEW_GATEWAY
    server.restart()
    renew(wan1)
    moved = {**both4, "wan1": (NEW_GATEWAY, METRICS["wan1"])}
    pingu.until(lambda: routed(pingu, 4, moved), "pingu's route via the new gateway")
    captured = pingu.find_log(capture_line("wan1/ipv4", NEW_GATEWAY, DHCP), after=mark)
    assert [m["what"] for m in captured][:1] == ["new gateway"]
    pingu.wait_log(r" wan1/ipv4: round passed: ", after=pingu.mark())
    assert leaves_via(lab, T4) == "wan1"
    assert lab.ping(None, T4).received == 1
    assert decisions_changed(pingu, "wan1/ipv4", mark) == []
    assert routed(pingu, 6, both6)  # IPv6 untouched

    # A crash (kill -9) and a restart: dhcpcd left everything; it rebinds its lease from
    # its file and puts its route back (pingu's deleted once more): each route it adds
    # captured once, pingu's put back once, nothing else moved. In IPv6, the same at the
    # first RA.
    capture4 = capture_line("wan1/ipv4", NEW_GATEWAY, DHCP)
    mark = pingu.mark()
    with DefaultRouteWatch(lab, 4) as watch4:
        wan1.kill()
        offset = len(wan1.log())
        wan1.start()
        wan1.wait_log("leased", 30, after=offset)
        pingu.wait_log(capture4, 30, after=mark)
        pingu.wait_log(capture_line("wan1/ipv6", LINK_LOCAL_GATEWAY, RA), 30, after=mark)
        pingu.until(lambda: routed(pingu, 4, moved) and routed(pingu, 6, both6), "as before")
        watch4.settle(quiet_s=1.0)
    re_adds = client_adds(wan1, 4, offset)
    assert 1 <= re_adds <= 2
    assert len(pingu.find_log(capture4, after=mark)) == re_adds
    assert on(watch4, lab, "wan1") == {
        ("RTM_NEWROUTE", DHCP): re_adds,
        ("RTM_DELROUTE", PROTO): re_adds,
        ("RTM_DELROUTE", DHCP): re_adds,
        ("RTM_NEWROUTE", PROTO): re_adds,
    }, watch4.changes
    assert all(watch4.tables())
    assert decisions_changed(pingu, "wan1/ipv4", mark) == []
    assert decisions_changed(pingu, "wan1/ipv6", mark) == []

    # The lease given up (a stop without persistent: the address, the SLAAC address and
    # the routes go, pingu's with its source): both of wan1's paths go down at once,
    # traffic moves to wan2.
    mark = pingu.mark()
    assert wan1.stop() == 0
    assert wan1.leases() == []
    assert wan1.slaac_addresses() == []
    pingu.until(
        lambda: (
            routed(pingu, 4, gateways(lab, 4, "wan2"))
            and routed(pingu, 6, gateways(lab, 6, "wan2"))
        ),
        "wan1's routes gone in both families",
    )
    pingu.wait_log(r" WARNING wan1/ipv4 up -> down: ", after=mark)
    pingu.wait_log(r" WARNING wan1/ipv6 up -> down: ", after=mark)
    assert (leaves_via(lab, T4), leaves_via(lab, T6)) == ("wan2", "wan2")
    assert lab.ping(None, T4).received == 1
    assert lab.ping(None, T6).received == 1

    # dhcpcd again: a new lease, captured; wan1 back in both families.
    mark = pingu.mark()
    wan1.start()
    pingu.until(
        lambda: routed(pingu, 4, moved) and routed(pingu, 6, both6),
        "wan1 captured again and routed in both families",
        CLIENT_WAIT,
    )
    pingu.wait_log(r" WARNING wan1/ipv4 down -> up: ", after=mark)
    pingu.wait_log(r" WARNING wan1/ipv6 down -> up: ", after=mark)
    assert (leaves_via(lab, T4), leaves_via(lab, T6)) == ("wan1", "wan1")
    assert len(pingu.find_log(capture4, after=mark)) == 1
    assert pingu.stop() == 0


# -- udhcpc (busybox): DHCPv4 from dnsmasq ---------------------------------------------------


def test_udhcpc_on_two_uplinks_renewals_failover_new_gateway_release_and_restart(
    lab: Lab, programs: Programs, pingus: Daemons, tmp_path: Path
) -> None:
    """udhcpc's routes are ``proto boot metric 0``: one uplink's only, the second one's
    ``ip route add`` fails ("File exists") until the first one's is gone."""
    servers = {uplink: programs(DnsmasqServer(lab, uplink, **QUIET_LEASE)) for uplink in UPLINKS}
    wan1 = programs(UdhcpcClient(lab, "wan1"))
    wan1.wait_default_route(4, CLIENT_WAIT)
    wan2 = programs(UdhcpcClient(lab, "wan2"))
    wan2.wait_lease(CLIENT_WAIT)
    wan2.wait_log("File exists", 30)
    assert [r.oif for r in foreign(lab, 4)] == ["wan1"]

    # Start-up: wan1's route captured; wan2 has none to learn from, and udhcpc renews
    # only at half its lease. Its reset script (what runs for an uplink without a gateway)
    # asks udhcpc to renew: the route is added now that wan1's is gone, and captured.
    record = tmp_path / "resets"
    renew = write_script(
        tmp_path / "renew-udhcpc.sh",
        f'#!/bin/sh\necho "$PINGU_INTERFACE: $PINGU_REASON" >> {record}\nkill -USR1 {wan2.pid}\n',
    )
    pingu = pingus.start(lab, pingu_config([T4], wan2={"reset_script": renew}), verbose=True)
    both = gateways(lab, 4, *UPLINKS)
    pingu.until(lambda: routed(pingu, 4, both), "both uplinks captured and routed")
    pingu.wait_log(capture_line("wan1", "100.64.1.1", BOOT, 0))
    pingu.wait_log(capture_line("wan2", "100.64.2.1", BOOT, 0))
    assert record.read_text().splitlines() == ["wan2: no gateway learned"]
    assert leaves_via(lab, T4) == "wan1"

    # Renewals: udhcpc adds its route back (pingu deleted it) and leaves pingu's alone.
    capture1 = capture_line("wan1", "100.64.1.1", BOOT, 0)
    mark = pingu.mark()
    with DefaultRouteWatch(lab, 4) as watch:
        for n in range(1, RENEWALS + 1):
            wan1.renew()
            pingu.wait_log(capture1, 30, after=mark, count=n)
            pingu.until(lambda: routed(pingu, 4, both), "udhcpc's route deleted again")
    assert [m["what"] for m in pingu.find_log(capture1, after=mark)] == ["gateway"] * RENEWALS
    assert on(watch, lab, "wan1") == {("RTM_NEWROUTE", BOOT): RENEWALS,
                                      ("RTM_DELROUTE", BOOT): RENEWALS}  # fmt: skip
    assert pingus_route_in_every_table(watch, lab, "wan1")
    assert decisions_changed(pingu, "wan1", mark) == []

    # Failover while udhcpc renews: its metric-0 route, put back on the dead uplink, is
    # the box's best route until pingu deletes it, at once; pingu's stays out.
    lab.cut_upstream("wan1")
    pingu.until(lambda: routed(pingu, 4, gateways(lab, 4, "wan2")), "wan1's route removed")
    assert leaves_via(lab, T4) == "wan2"
    mark = pingu.mark()
    with DefaultRouteWatch(lab, 4) as watch:
        for n in range(1, RENEWALS + 1):
            wan1.renew()
            pingu.wait_log(capture1, 30, after=mark, count=n)
            pingu.until(lambda: not foreign(lab, 4, "wan1"), "udhcpc's route deleted")
            assert leaves_via(lab, T4) == "wan2"
    assert on(watch, lab, "wan1") == {("RTM_NEWROUTE", BOOT): RENEWALS,
                                      ("RTM_DELROUTE", BOOT): RENEWALS}  # fmt: skip
    # Between each re-add and its deletion, the box's traffic took the dead uplink.
    assert {best_oif(t) for t in watch.tables()} == {lab.ifindex("wan1"), lab.ifindex("wan2")}
    assert decisions_changed(pingu, "wan1", mark) == []
    lab.restore_upstream("wan1")
    pingu.until(lambda: routed(pingu, 4, both), "wan1 back")
    assert leaves_via(lab, T4) == "wan1"

    # A new gateway: udhcpc flushes every default route of wan1 (pingu's included), then
    # adds its new one; pingu follows.
    mark = pingu.mark()
    server = servers["wan1"]
    server.router = NEW_GATEWAY
    server.restart()
    moved = {**both, "wan1": (NEW_GATEWAY, METRICS["wan1"])}
    with DefaultRouteWatch(lab, 4) as watch:
        wan1.renew()
        pingu.until(lambda: routed(pingu, 4, moved), "pingu's route via the new gateway")
        watch.settle()
    (captured,) = pingu.find_log(capture_line("wan1", NEW_GATEWAY, BOOT, 0), after=mark)
    assert captured["what"] == "new gateway"
    assert all(watch.tables())  # wan2 carried the traffic meanwhile
    pingu.wait_log(r" wan1: round passed: ", after=pingu.mark())
    assert leaves_via(lab, T4) == "wan1"
    assert lab.ping(None, T4).received == 1

    # Stopped (-R: the lease released, the uplink deconfigured): the address is flushed
    # and the routes through it, pingu's too, vanish without a word from the kernel.
    # pingu's next round finds no address to probe from: wan1 down, traffic on wan2.
    mark = pingu.mark()
    wan1.stop()
    assert wan1.leases() == []
    pingu.wait_log(r" WARNING wan1 up -> down: ", after=mark)
    pingu.until(lambda: routed(pingu, 4, gateways(lab, 4, "wan2")), "only wan2 routed")
    assert leaves_via(lab, T4) == "wan2"

    # Started again (the same address: dnsmasq knows the client), then a crash (kill -9)
    # and a start: its route added again, captured, wan1 routed again. At each start
    # udhcpc's ifconfig sets the address, then its netmask: the kernel deletes and adds
    # the address again, which makes pingu read the table, which may show the new route
    # before its notification comes: then it is captured twice (the second deletion
    # finds nothing), never more.
    for restart in ("start", "kill -9 and start"):
        mark = pingu.mark()
        if restart != "start":
            wan1.kill()
        wan1.start()
        pingu.wait_log(capture_line("wan1", NEW_GATEWAY, BOOT, 0), 30, after=mark)
        pingu.until(lambda: routed(pingu, 4, moved), f"wan1 routed again after {restart}")
        captures = pingu.find_log(capture_line("wan1", NEW_GATEWAY, BOOT, 0), after=mark)
        assert 1 <= len(captures) <= 2, [m[0] for m in captures]
        assert leaves_via(lab, T4) == "wan1"
    assert pingu.stop() == 0
    # Its routes back as udhcpc made them: wan2's refused at first, put back by pingu.
    back = {(r.oif, r.gateway, r.proto, r.metric) for r in lab.default_routes(family=4)}
    assert back == {("wan1", NEW_GATEWAY, BOOT, 0), ("wan2", "100.64.2.1", BOOT, 0)}


# -- the kernel's own RA handling (accept_ra=2) with radvd ------------------------------------


def test_the_kernel_taking_radvd_adverts_on_a_box_that_forwards(
    lab: Lab, programs: Programs, pingus: Daemons
) -> None:
    """A router forwards: the kernel then takes RAs only with accept_ra=2. Its routes are
    ``proto ra metric 1024 expires N``, put back at every advertisement."""
    lab.run("daemon", ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])
    radvd = {uplink: programs(RadvdServer(lab, uplink)) for uplink in UPLINKS}
    kernels = [programs.kernel(KernelRA(lab, uplink)) for uplink in UPLINKS]
    for kernel in kernels:
        route = kernel.wait_default_route(6, CLIENT_WAIT)
        assert route.expires is not None
    pingu = pingus.start(lab, pingu_config([T6]), verbose=True)
    both = gateways(lab, 6, *UPLINKS)
    pingu.until(lambda: routed(pingu, 6, both), "both uplinks captured and routed")
    pingu.wait_ready()
    capture1 = capture_line("wan1/ipv6", LINK_LOCAL_GATEWAY, RA, 1024)
    pingu.wait_log(capture1)
    assert leaves_via(lab, T6) == "wan1"

    # Every advertisement (every 3-4 s) puts the kernel's route back: captured once,
    # deleted once, pingu's route never touched (the kernel does not delete it).
    quiet_after(pingu, capture1, 6, "wan1")
    mark = pingu.mark()
    with DefaultRouteWatch(lab, 6) as watch:
        for n in range(1, RENEWALS + 1):
            pingu.wait_log(capture1, 30, after=mark, count=n)
            pingu.until(lambda: routed(pingu, 6, both), "the kernel's route deleted again")
    assert [m["what"] for m in pingu.find_log(capture1, after=mark)] == ["gateway"] * RENEWALS
    assert on(watch, lab, "wan1") == {("RTM_NEWROUTE", RA): RENEWALS,
                                      ("RTM_DELROUTE", RA): RENEWALS}  # fmt: skip
    assert pingus_route_in_every_table(watch, lab, "wan1")
    assert pingus_route_in_every_table(watch, lab, "wan2")
    assert decisions_changed(pingu, "wan1/ipv6", mark) == []

    # The router withdraws itself (router lifetime 0): down at once, without a failed
    # round; it advertises again: captured as a new gateway, probed, up.
    mark = pingu.mark()
    radvd["wan1"].set_router_lifetime(0)
    pingu.wait_log(r" WARNING wan1/ipv6 up -> down: router fe80::1 withdrew .*lifetime 0", 30,
                   after=mark)  # fmt: skip
    pingu.until(lambda: routed(pingu, 6, gateways(lab, 6, "wan2")), "only wan2 routed")
    assert leaves_via(lab, T6) == "wan2"
    assert not pingu.find_log(r" wan1/ipv6: round failed: ", after=mark)
    radvd["wan1"].set_router_lifetime(30)
    pingu.until(lambda: routed(pingu, 6, both), "wan1 back", 30)
    (back,) = [m["what"] for m in pingu.find_log(capture1, after=mark)][-1:]
    assert back == "new gateway"

    # Failover while the router keeps advertising: the kernel's route (metric 1024, above
    # wan2's) is deleted at each advertisement and never carries traffic.
    lab.cut_upstream("wan1", 6)
    pingu.until(lambda: routed(pingu, 6, gateways(lab, 6, "wan2")), "wan1 failed over")
    mark = pingu.mark()
    with DefaultRouteWatch(lab, 6) as watch:
        for n in range(1, 3):
            pingu.wait_log(capture1, 30, after=mark, count=n)
            pingu.until(lambda: not foreign(lab, 6, "wan1"), "the kernel's route deleted")
            assert leaves_via(lab, T6) == "wan2"
    assert {best_oif(t) for t in watch.tables()} == {lab.ifindex("wan2")}
    assert ("RTM_NEWROUTE", PROTO) not in on(watch, lab, "wan1")
    lab.restore_upstream("wan1", 6)
    pingu.until(lambda: routed(pingu, 6, both), "wan1 back after the cut")

    # The router restarts: radvd's last advert says lifetime 0 (down at once), its first
    # one after brings the route back.
    mark = pingu.mark()
    radvd["wan1"].stop()
    pingu.wait_log(r" WARNING wan1/ipv6 up -> down: router fe80::1 withdrew ", 30, after=mark)
    assert leaves_via(lab, T6) == "wan2"
    radvd["wan1"].start()
    pingu.until(lambda: routed(pingu, 6, both), "wan1 back after radvd's restart", 30)
    pingu.wait_log(r" WARNING wan1/ipv6 down -> up: ", after=mark)
    assert leaves_via(lab, T6) == "wan1"
    assert pingu.stop() == 0
    # The kernel's routes back (proto ra), one for each uplink. Put back through netlink,
    # two routes of one metric (the kernel's 1024) on two links are merged by the kernel
    # into one multipath route: only its own RA routes stay apart (README).
    restored = lab.default_routes(family=6)
    legs = {r.oif for r in restored if r.oif} | {h.oif for r in restored for h in r.nexthops}
    assert legs == set(UPLINKS)
    assert {r.proto for r in restored} == {RA}
