"""Traffic follows the route, on the real kernel: a LAN behind the box, NATed out of each
uplink (masquerade, or a static SNAT to the uplink's address), ISPs that drop what does
not come from their customer's addresses, and the flows that a switch breaks: a UDP
"tunnel" with one fixed source port, long-lived TCP connections through the NAT, and the
box's own TCP connection. After a failover and a failback, pingu must have ended exactly
what the change broke, and the flows run again over the new uplink; with its settings
off, the stuck flows are reproduced, so that these tests prove the fix.

Every wait is bounded and waits for an observable state; none asserts how fast: the
figures are in the bench (``nox -s bench -- --only flows``)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from pingu.lab import Lab
from pingu.lab.lan import NAT_KINDS, Lan, NatKind
from pingu.lab.traffic import LISTEN_PORT, PORT, TUNNEL_PORT, Server, Tool, Traffic
from tests.netns.conftest import LabFactory
from tests.netns.daemon import Daemons, RunningDaemon, until
from tests.netns.test_status import METRICS_PORT, by_name, sample, scrape, status_document

pytestmark = pytest.mark.netns

FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
TARGET, PINNED_TARGET = "203.0.113.10", "203.0.113.11"
WAIT_S = 30.0  # two shared cores, other tests beside: generous, and every wait is bounded
STUCK_S = 3.0  # how long a flow left alone is watched, to show it stays stuck
QUIET_SLACK_S = 0.5
ENDED = (
    r" {uplink}: traffic left it (?:for (?P<now>\S+)|and no route is left)(?P<quiet> after a "
    r"quiet period of [\d.]+ s)?: (?:(?P<conntrack>\d+) conntrack entr(?:y|ies) deleted)?"
    r"(?:, )?(?:(?P<sockets>\d+) TCP connections? destroyed)?"
)


@dataclass(frozen=True)
class Change:
    """When a route change happened, as the test saw it: between its last look at the
    table before (``before``) and its first look after (``after``)."""

    before: float
    after: float


@dataclass
class World:
    """A lab with wan1 (metric 100) and wan2 (200), its LAN behind NAT, the traffic tools
    and pingu, both uplinks up and routed."""

    lab: Lab
    lan: Lan
    traffic: Traffic
    pingu: RunningDaemon
    family: int = 4

    def address(self, uplink: str) -> str:
        if self.family == 4:
            return self.lab.local_address(uplink)
        return self.lab.local_address6(uplink)

    def own_routes(self) -> set[str]:
        """The uplinks of pingu's default routes in the world's family."""
        if self.family == 4:
            return set(self.pingu.own_routes())
        routes = self.lab.default_routes(family=6)
        return {str(r.oif) for r in routes if r.proto == self.pingu.proto}

    def route_change(self, changed: Callable[[set[str]], bool], what: str) -> Change:
        """Wait until pingu's routes satisfy ``changed``; when that happened."""
        before = time.monotonic()
        seen: list[float] = []

        def looked() -> bool:
            nonlocal before
            now = time.monotonic()
            if changed(self.own_routes()):
                seen.append(now)
                return True
            before = now
            return False

        self.pingu.until(looked, what, WAIT_S)
        return Change(before, seen[0])

    def fail_over(self) -> Change:
        """wan1's upstream cut: wait until pingu's route for it is gone."""
        self.lab.cut_upstream("wan1", 6 if self.family == 6 else 4)
        return self.route_change(lambda routes: "wan1" not in routes, "failover: wan1's route gone")

    def fail_back(self) -> Change:
        """wan1's upstream restored: wait until pingu's route for it is back."""
        self.lab.restore_upstream("wan1", 6 if self.family == 6 else 4)
        return self.route_change(lambda routes: "wan1" in routes, "failback: wan1's route back")

    def ended(self, uplink: str, *, after: int = 0) -> re.Match[str]:
        """The log line saying what pingu ended when traffic left ``uplink``."""
        name = uplink if self.family == 4 else f"{uplink}/ipv6"
        return self.pingu.wait_log(ENDED.format(uplink=re.escape(name)), WAIT_S, after=after)

    def nothing_ended(self) -> bool:
        return not self.pingu.find_log(r" traffic left it ")


@pytest.fixture
def make_world(lab_factory: LabFactory, daemons: Daemons) -> Iterator[Callable[..., World]]:
    """``make_world(nat, **settings)``: a World whose pingu runs with ``settings`` at the
    top level of its configuration (``flush_conntrack``, ``flow_quiet_period``, ...)."""
    with ExitStack() as stack:

        def make(nat: NatKind = "masquerade", *, family: int = 4, **settings: Any) -> World:
            lab = lab_factory(["wan1", "wan2"], targets=[TARGET, PINNED_TARGET])
            lan = stack.enter_context(Lan(lab, nat))
            traffic = stack.enter_context(Traffic(lab, lan, lifetime_s=240))
            if family == 4:
                lab.dhcp_add("wan1", metric=1024)
                lab.dhcp_add("wan2", metric=1025)
                host = lab.targets[0]
            else:
                lab.ra_add("wan1", metric=1024)
                lab.ra_add("wan2", metric=1025)
                host = lab.targets6[0]
            interfaces = {"wan1": {"metric": 100, **FAST}, "wan2": {"metric": 200, **FAST}}
            config = {"host": host, "period": 0.5, **settings, "interfaces": interfaces}
            # Verbose: a flow ending that found nothing is logged at DEBUG.
            world = World(lab, lan, traffic, daemons.start(lab, config, verbose=True), family)
            world.pingu.wait_ready(WAIT_S)
            world.route_change(lambda r: r == {"wan1", "wan2"}, "pingu's routes on both uplinks")
            return world

        yield make


def reaches(server: Server, tool: Tool, src: str, *, after: float = 0.0) -> float:
    """Wait until ``tool``'s messages reach the server from ``src``; when the first did."""
    return float(server.wait_from(tool, src, after=after, timeout=WAIT_S)["t"])


def reconnected(client: Tool, server: Server, src: str, *, after: float) -> dict[str, Any]:
    """``client``'s connection failed after ``after`` (an error it saw itself), it made a
    new one, and that one's lines reach the server from ``src``: its "error" record."""
    error = client.wait("error", after=after, timeout=WAIT_S, what="its connection failing")
    client.wait("connected", after=error["t"], timeout=WAIT_S, what="a new connection")
    client.wait("reply", after=error["t"], timeout=WAIT_S, what="an echo on the new connection")
    reaches(server, client, src, after=error["t"])
    return error


def deleted(match: re.Match[str]) -> int:
    return int(match["conntrack"] or 0)


def destroyed(match: re.Match[str]) -> int:
    return int(match["sockets"] or 0)


# --------------------------------------------------------------------- the LAN's flows


@pytest.mark.parametrize("nat", NAT_KINDS)
def test_lan_flows_resume_over_the_new_uplink_after_a_failover_and_a_failback(
    make_world: Callable[..., World], nat: NatKind
) -> None:
    world = make_world(nat)
    wan1, wan2 = world.address("wan1"), world.address("wan2")
    server = world.traffic.server()
    tunnel = world.traffic.udp_tunnel("tunnel")
    tcp = world.traffic.tcp_client("lan-tcp", "lan")
    reaches(server, tunnel, wan1)
    reaches(server, tcp, wan1)

    mark = world.pingu.mark()
    over = world.fail_over()
    # The tunnel's one socket, its one source port: the same flow, now from wan2.
    reaches(server, tunnel, wan2, after=over.before)
    reconnected(tcp, server, wan2, after=over.before)
    ended = world.ended("wan1", after=mark)
    assert ended["now"] == "wan2"
    if nat == "snat":  # masquerade: the kernel may have dropped them first
        assert deleted(ended) >= 2, ended[0]  # the tunnel's entry and the TCP connection's
    lan = world.lan.client_address
    left = [e for e in world.lan.conntrack() if e.src == lan and e.reply_dst == wan1]
    assert not left, f"entries NATed to wan1 left after the failover: {left}"

    # Flows that start on wan2 while wan1 is down, and the ones that moved there, go back
    # to wan1 when it returns: each is NATed to wan2's address, which wan1's ISP refuses.
    started_on_wan2 = world.traffic.udp_tunnel("tunnel-on-wan2", sport=51821)
    reaches(server, started_on_wan2, wan2)
    mark = world.pingu.mark()
    back = world.fail_back()
    reaches(server, started_on_wan2, wan1, after=back.before)
    reaches(server, tunnel, wan1, after=back.before)
    reconnected(tcp, server, wan1, after=back.before)
    ended = world.ended("wan2", after=mark)
    assert ended["now"] == "wan1"
    if nat == "snat":
        assert deleted(ended) >= 3, ended[0]  # two tunnels and the TCP connection


@pytest.mark.parametrize("nat", NAT_KINDS)
def test_flows_that_keep_their_uplink_are_untouched_by_a_failover_and_a_failback(
    make_world: Callable[..., World], nat: NatKind
) -> None:
    """wan2 carries the flows to a target routed through it on purpose (a host route):
    wan1's failover ends wan1's flows, and not one of those; nor does the failback, when
    traffic leaves wan2 but they still go out of it, as before."""
    world = make_world(nat)
    wan2 = world.address("wan2")
    world.lab.run("daemon", ["ip", "route", "add", f"{PINNED_TARGET}/32", "via",
                             world.lab.gateway("wan2"), "dev", "wan2"])  # fmt: skip
    server = world.traffic.server()
    moving = world.traffic.udp_tunnel("moving")
    pinned = world.traffic.udp_tunnel("pinned", to=PINNED_TARGET, sport=51821)
    pinned_tcp = world.traffic.tcp_client("pinned-tcp", "lan", to=PINNED_TARGET)
    box = world.traffic.tcp_client("pinned-box", "box", to=PINNED_TARGET)
    reaches(server, moving, world.address("wan1"))
    for tool in (pinned, pinned_tcp, box):
        reaches(server, tool, wan2)
    assert box.events("connected")[0]["local"] == wan2
    lan = world.lan
    before = {e.id for e in lan.conntrack() if e.dst == PINNED_TARGET}
    assert len(before) == 3, lan.conntrack()  # the pinned tunnel, TCP and the box's own

    mark = world.pingu.mark()
    over = world.fail_over()
    reaches(server, moving, wan2, after=over.before)
    world.ended("wan1", after=mark)
    # Still the same entries, still flowing, never an error.
    assert before <= {e.id for e in lan.conntrack() if e.dst == PINNED_TARGET}
    for tool in (pinned, pinned_tcp, box):
        reaches(server, tool, wan2, after=time.monotonic())
    assert not pinned_tcp.events("error")
    assert not box.events("error")

    mark = world.pingu.mark()
    back = world.fail_back()
    reaches(server, moving, world.address("wan1"), after=back.before)
    world.ended("wan2", after=mark)
    assert before <= {e.id for e in lan.conntrack() if e.dst == PINNED_TARGET}
    for tool in (pinned, pinned_tcp, box):
        reaches(server, tool, wan2, after=time.monotonic())
    assert not pinned_tcp.events("error")
    assert not box.events("error")
    assert len(pinned_tcp.events("connected")) == len(box.events("connected")) == 1


# --------------------------------------------------------------------- the box's own


def test_the_box_connection_fails_at_once_and_reconnects_over_the_new_uplink(
    make_world: Callable[..., World],
) -> None:
    world = make_world("snat", metrics=f"127.0.0.1:{METRICS_PORT}")
    wan1, wan2 = world.address("wan1"), world.address("wan2")
    server = world.traffic.server()
    box = world.traffic.tcp_client("box", "box")
    tunnel = world.traffic.udp_tunnel("tunnel")  # for the conntrack counters
    listener = world.traffic.listener(wan1)
    reaches(server, box, wan1)
    reaches(server, tunnel, wan1)
    assert box.events("connected")[0]["local"] == wan1

    mark = world.pingu.mark()
    over = world.fail_over()
    error = reconnected(box, server, wan2, after=over.before)
    assert error["error"] in ("ECONNABORTED", "EPIPE", "ECONNRESET"), error
    assert box.events("connected", after=error["t"])[0]["local"] == wan2
    ended = world.ended("wan1", after=mark)
    assert destroyed(ended) == 1, ended[0]

    # The listening socket on wan1's address is no connection: still there, and it still
    # answers (the LAN reaches the box's address on wan1 whatever the default route).
    assert listener.alive()
    assert not listener.events("error")
    answer = world.lan.run([sys.executable, "-c", ECHO_ONCE, wan1, str(LISTEN_PORT)])
    assert answer.strip() == "hello 1"
    listener.wait("accept", lambda e: e["src"] == world.lan.client_address)

    reaches(server, tunnel, wan2, after=over.before)
    mark = world.pingu.mark()
    back = world.fail_back()
    reconnected(box, server, wan1, after=back.before)
    assert destroyed(world.ended("wan2", after=mark)) == 1

    counters = {name: u["counters"] for name, u in by_name(status_document(world.pingu)).items()}
    assert counters["wan1"]["sockets_destroyed"] == counters["wan2"]["sockets_destroyed"] == 1
    assert counters["wan1"]["conntrack_deleted"] >= 1  # the tunnel's, NATed to wan1
    assert counters["wan2"]["conntrack_deleted"] >= 1  # and then to wan2
    metrics = scrape(world.lab)
    assert sample(metrics, "pingu_uplink_sockets_destroyed_total", "wan1") == 1
    assert sample(metrics, "pingu_uplink_conntrack_deleted_total", "wan1") >= 1


ECHO_ONCE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    s.sendall(b"hello 1\\n")
    print(s.makefile().readline().strip())
"""


@pytest.mark.parametrize("nat", NAT_KINDS)
def test_ipv6_the_box_connection_and_a_nat66_flow_follow_a_failover(
    make_world: Callable[..., World], nat: NatKind
) -> None:
    world = make_world(nat, family=6)
    wan1, wan2 = world.address("wan1"), world.address("wan2")
    server = world.traffic.server()
    target = world.lab.targets6[0]
    box = world.traffic.tcp_client("box6", "box", to=target)
    tunnel = world.traffic.udp_tunnel("tunnel6", to=target)
    reaches(server, box, wan1)
    reaches(server, tunnel, wan1)

    mark = world.pingu.mark()
    over = world.fail_over()
    reconnected(box, server, wan2, after=over.before)
    reaches(server, tunnel, wan2, after=over.before)
    ended = world.ended("wan1", after=mark)
    assert destroyed(ended) == 1, ended[0]
    if nat == "snat":  # masquerade: the kernel may have dropped the tunnel's entry first
        assert deleted(ended) >= 1, ended[0]


# --------------------------------------------------------------------- settings


def test_with_the_settings_off_the_snat_flows_and_the_box_connection_stay_stuck(
    make_world: Callable[..., World],
) -> None:
    """What pingu fixes, reproduced: after the failover the SNAT'd flows keep wan1's address
    on wan2, where its ISP drops them; the box's own connection waits for answers that
    never come, and nobody tells it."""
    world = make_world("snat", flush_conntrack=False, kill_sockets=False)
    wan1 = world.address("wan1")
    server = world.traffic.server()
    tunnel = world.traffic.udp_tunnel("tunnel")
    tcp = world.traffic.tcp_client("lan-tcp", "lan")
    box = world.traffic.tcp_client("box", "box")
    for tool in (tunnel, tcp, box):
        reaches(server, tool, wan1)
    spoofed = world.lan.spoofed("wan2")

    over = world.fail_over()
    # The tunnel keeps sending, out of wan2 now, with wan1's address: wan2's ISP drops it.
    sent = len(tunnel.events("sent", after=over.after))
    until(lambda: len(tunnel.events("sent", after=over.after)) >= sent + 50, "tunnel sending")
    until(lambda: world.lan.spoofed("wan2") >= spoofed + 50, "wan2's ISP dropping wan1's")
    time.sleep(STUCK_S)  # watching the stuck flows: nothing is awaited here
    assert not server.received(after=over.after), "a stuck flow reached the internet"
    entry = world.lan.flow(TUNNEL_PORT, PORT)
    assert entry is not None
    assert entry.reply_dst == wan1, entry
    for client in (tcp, box):
        assert not client.events("error")
        assert not client.events("reply", after=over.after)
    assert world.nothing_ended()


def test_with_the_settings_off_masquerade_recovers_by_itself_but_not_the_box_connection(
    make_world: Callable[..., World],
) -> None:
    """Why masquerade needs nothing: the kernel drops a masqueraded entry whose packets
    leave by another interface, and the next packet is NATed anew. The box's own
    connection is no NAT's business: it hangs as with SNAT."""
    world = make_world("masquerade", flush_conntrack=False, kill_sockets=False)
    wan1, wan2 = world.address("wan1"), world.address("wan2")
    server = world.traffic.server()
    tunnel = world.traffic.udp_tunnel("tunnel")
    tcp = world.traffic.tcp_client("lan-tcp", "lan")
    box = world.traffic.tcp_client("box", "box")
    for tool in (tunnel, tcp, box):
        reaches(server, tool, wan1)

    over = world.fail_over()
    reaches(server, tunnel, wan2, after=over.before)
    reconnected(tcp, server, wan2, after=over.before)
    time.sleep(STUCK_S)  # watching the box's connection: nothing is awaited here
    assert not box.events("error")
    assert not box.events("reply", after=over.after)
    assert world.nothing_ended()


def test_the_quiet_period_is_waited_for_before_flows_are_ended(
    make_world: Callable[..., World],
) -> None:
    quiet = 2.0
    world = make_world("snat", flow_quiet_period=quiet)
    wan2 = world.address("wan2")
    server = world.traffic.server()
    tunnel = world.traffic.udp_tunnel("tunnel")
    box = world.traffic.tcp_client("box", "box")
    reaches(server, tunnel, world.address("wan1"))
    reaches(server, box, world.address("wan1"))

    mark = world.pingu.mark()
    over = world.fail_over()
    moved = reaches(server, tunnel, wan2, after=over.before)
    error = reconnected(box, server, wan2, after=over.before)
    ended = world.ended("wan1", after=mark)
    assert ended["quiet"], ended[0]
    # Lower bounds only: nothing may be ended before the quiet period that follows the
    # route change is over. The change fell between the test's last two looks at the
    # table, and the daemon may have decided it a moment before the earlier one: the
    # slack covers that moment, far below what a daemon ignoring the period would show.
    assert moved - over.before >= quiet - QUIET_SLACK_S, (moved, over)
    assert error["t"] - over.before >= quiet - QUIET_SLACK_S, (error, over)
