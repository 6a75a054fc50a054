"""The real daemon managing uplinks in both families (issue 14): IPv6 failing over alone
while IPv4 stays routed, both families cut, carrier loss, a point-to-point uplink with
IPv6, kill -9 and a restart on the saved state, SIGHUP adding and removing the IPv6
family, forged ICMPv6 echo replies, the kernel re-adding a router advertisement's route,
and real router advertisements (scapy, from the ISP's side of the link) withdrawing the
router and bringing it back.

Router advertisement routes are simulated with ``lab.ra_add`` (what the kernel installs),
except in the last test, where the daemon namespace's own kernel turns real
advertisements into its route."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import signal
import socket
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6ND_RA,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)

from pingu.lab import Lab, Route, Uplink
from pingu.lab.lab import IPVersion
from tests.netns.conftest import LabFactory, NamespaceLoop, run_in_namespace
from tests.netns.daemon import PROTO, Daemons, RunningDaemon, until, write_script
from tests.netns.route_watch import DefaultRouteWatch

pytestmark = pytest.mark.netns

T4, T6 = "203.0.113.10", "2001:db8:ffff::10"
FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
RA, DHCP = 9, 16
LINK_LOCAL_GATEWAY = "fe80::1"  # the lab's ISP on every ethernet uplink
ROUNDS_TO_WATCH = 3  # rounds judged while nothing must change: about 1.5 s at period 0.5
ETH_P_IPV6 = 0x86DD
PACKET_HOST = 0
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"  # ff02::1 on Ethernet
ICMPV6_ECHO_REQUEST = 128
IPPROTO_ICMPV6 = 58

Own = dict[str, tuple[str | None, int]]


def dual_config(metrics: dict[str, int], **top: Any) -> dict[str, Any]:
    interfaces = {name: {"metric": metric, **FAST} for name, metric in metrics.items()}
    return {"host": [T4, T6], "period": 0.5, **top, "interfaces": interfaces}


UPLINKS = ("wan1", "wan2")


def foreign(lab: Lab, family: IPVersion, uplinks: tuple[str, ...] = UPLINKS) -> list[Route]:
    """Default routes of the family on the uplinks that are not pingu's (DHCP, RA, PPP)."""
    return [r for r in lab.default_routes(family=family) if r.proto != PROTO and r.oif in uplinks]


def leaves_via(lab: Lab, target: str) -> str | None:
    """The interface the daemon namespace's kernel sends traffic to ``target`` out of."""
    done = lab.run("daemon", ["ip", "-j", "route", "get", target], check=False)
    if done.returncode != 0:
        return None
    (route,) = json.loads(done.stdout)
    return str(route.get("dev"))


@pytest.fixture
def lab(lab_factory: LabFactory) -> Lab:
    """wan1 and wan2, each with a DHCP lease and a router advertisement's route."""
    lab = lab_factory(["wan1", "wan2"], targets=[T4, T6])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    lab.ra_add("wan1", metric=1024)
    lab.ra_add("wan2", metric=1025)  # `ip` refuses a second one of the same metric
    return lab


def v4(lab: Lab) -> Own:
    return {"wan1": (lab.gateway("wan1"), 100), "wan2": (lab.gateway("wan2"), 200)}


def v6(lab: Lab) -> Own:
    return {"wan1": (LINK_LOCAL_GATEWAY, 100), "wan2": (LINK_LOCAL_GATEWAY, 200)}


def without(routes: Own, uplink: str) -> Own:
    return {name: route for name, route in routes.items() if name != uplink}


def routed(pingu: RunningDaemon, want4: Own, want6: Own) -> bool:
    """pingu's routes are exactly these in both families, and no captured one is left."""
    lab = pingu.lab
    uplinks = tuple(pingu.config["interfaces"])
    return (
        pingu.own_routes(4) == want4
        and pingu.own_routes(6) == want6
        and not foreign(lab, 4, uplinks)
        and not foreign(lab, 6, uplinks)
    )


def started(daemons: Daemons, lab: Lab, config: dict[str, Any], **kw: Any) -> RunningDaemon:
    pingu = daemons.start(lab, config, **kw)
    pingu.until(lambda: routed(pingu, v4(lab), v6(lab)), "both families captured and routed")
    pingu.wait_ready()
    return pingu


def recording_reset(tmp_path: Path) -> tuple[str, Path]:
    """A reset script that records each run (the family that found the line faulty)."""
    record = tmp_path / "resets"
    script = write_script(
        tmp_path / "reset.sh",
        f'#!/bin/sh\necho "$PINGU_INTERFACE $PINGU_FAMILY" >> {record}\n',
    )
    return script, record


def runs(record: Path) -> list[str]:
    return record.read_text().splitlines() if record.exists() else []


# -- one family or both -----------------------------------------------------------------


def test_an_ipv6_only_cut_fails_over_ipv6_alone_and_back_while_ipv4_stays(
    lab: Lab, daemons: Daemons, tmp_path: Path
) -> None:
    reset, record = recording_reset(tmp_path)
    config = dual_config({"wan1": 100, "wan2": 200})
    config["interfaces"]["wan1"]["reset_script"] = reset
    pingu = started(daemons, lab, config)
    assert (leaves_via(lab, T4), leaves_via(lab, T6)) == ("wan1", "wan1")
    mark = pingu.mark()

    lab.cut_upstream("wan1", 6)

    def ipv6_failed_over() -> bool:
        assert pingu.own_routes(4) == v4(lab), "IPv4 moved while only IPv6 was cut"
        return pingu.own_routes(6) == without(v6(lab), "wan1")

    pingu.until(ipv6_failed_over, "wan1's IPv6 route removed, its IPv4 route kept")
    pingu.wait_log(r" WARNING wan1/ipv6 up -> down: .* via fe80::1; route metric 100 removed")
    assert (leaves_via(lab, T4), leaves_via(lab, T6)) == ("wan1", "wan2")
    assert lab.ping(None, T6).received == 1  # IPv6 traffic goes out of wan2, and comes back
    # The line works in IPv4: however many IPv6 rounds fail, the line is not reset.
    pingu.wait_log(r" wan1/ipv6: round failed: ", after=mark, count=ROUNDS_TO_WATCH)
    assert runs(record) == []

    lab.restore_upstream("wan1", 6)

    def ipv6_back() -> bool:
        assert pingu.own_routes(4) == v4(lab), "IPv4 moved while IPv6 came back"
        return pingu.own_routes(6) == v6(lab)

    pingu.until(ipv6_back, "wan1's IPv6 route back")
    assert leaves_via(lab, T6) == "wan1"
    assert not [d for d in pingu.decisions("wan1/ipv4", after=mark) if "->" in d]
    assert not [d for d in pingu.decisions("wan2/ipv6", after=mark) if "->" in d]
    assert runs(record) == []
    assert pingu.stop() == 0
    assert {(r.oif, r.proto) for r in lab.default_routes(family=6)} == {("wan1", RA), ("wan2", RA)}


def test_a_cut_of_both_families_takes_both_routes_and_resets_the_line_once(
    lab: Lab, daemons: Daemons, tmp_path: Path
) -> None:
    reset, record = recording_reset(tmp_path)
    config = dual_config({"wan1": 100, "wan2": 200})
    config["interfaces"]["wan1"]["reset_script"] = reset
    pingu = started(daemons, lab, config)
    mark = pingu.mark()

    lab.cut_upstream("wan1")
    pingu.until(
        lambda: routed(pingu, without(v4(lab), "wan1"), without(v6(lab), "wan1")),
        "wan1's routes removed in both families",
    )
    pingu.wait_log(r" WARNING wan1/ipv4 up -> down: ", after=mark)
    pingu.wait_log(r" WARNING wan1/ipv6 up -> down: ", after=mark)
    assert (leaves_via(lab, T4), leaves_via(lab, T6)) == ("wan2", "wan2")
    # Neither family carries traffic on the line any more: it is reset, once (its grace
    # period, 600 s, holds for both families).
    until(lambda: len(runs(record)) == 1, "the reset script ran")
    pingu.wait_log(r" wan1/ipv4: round failed: ", after=mark, count=ROUNDS_TO_WATCH)
    pingu.wait_log(r" wan1/ipv6: round failed: ", after=mark, count=ROUNDS_TO_WATCH)
    assert len(runs(record)) == 1
    assert runs(record)[0].split()[0] == "wan1"
    assert not pingu.find_log("ALL UPLINKS DOWN", after=mark)  # wan2 carries both

    lab.restore_upstream("wan1")
    pingu.until(lambda: routed(pingu, v4(lab), v6(lab)), "wan1 back in both families")
    assert not [d for d in pingu.decisions("wan2/ipv4", after=mark) if "->" in d]
    assert not [d for d in pingu.decisions("wan2/ipv6", after=mark) if "->" in d]
    assert pingu.stop() == 0


def test_carrier_loss_takes_both_families_down_at_once_and_back(lab: Lab, daemons: Daemons) -> None:
    pingu = started(daemons, lab, dual_config({"wan1": 100, "wan2": 200}))
    mark = pingu.mark()
    lab.carrier_down("wan1")
    pingu.until(
        lambda: routed(pingu, without(v4(lab), "wan1"), without(v6(lab), "wan1")),
        "wan1's routes removed in both families",
    )
    # Both on the link's event, before any round could fail.
    for family in ("ipv4", "ipv6"):
        down = rf" WARNING wan1/{family} up -> down: carrier lost via \S+; route metric 100 removed"
        pingu.wait_log(down, after=mark)
        assert pingu.decisions(f"wan1/{family}", after=mark)[0] == "up -> down"

    lab.carrier_up("wan1")
    pingu.until(lambda: routed(pingu, v4(lab), v6(lab)), "wan1 back in both families")
    pingu.wait_log(r" WARNING wan1/ipv6 down -> up: ", after=mark)
    assert lab.ping(None, T6).received == 1
    assert pingu.stop() == 0


@pytest.mark.parametrize("gateway", [None, LINK_LOCAL_GATEWAY], ids=["no gateway", "via fe80::1"])
def test_a_point_to_point_uplink_is_managed_in_ipv6_too(
    lab_factory: LabFactory, daemons: Daemons, gateway: str | None
) -> None:
    lab = lab_factory([Uplink("ppp0", "p2p"), "wan1"], targets=[T4, T6])
    lab.dhcp_add("ppp0", metric=1024, proto="boot")  # pppd: `default dev ppp0 scope link`
    lab.dhcp_add("wan1", metric=1025)
    lab.ra_add("ppp0", gateway, metric=1024)  # the peer's RA: no gateway, or its link-local
    lab.ra_add("wan1", metric=1025)
    want4: Own = {"ppp0": (None, 100), "wan1": (lab.gateway("wan1"), 200)}
    want6: Own = {"ppp0": (gateway, 100), "wan1": (LINK_LOCAL_GATEWAY, 200)}
    config = dual_config({"ppp0": 100, "wan1": 200})
    pingu = daemons.start(lab, config, verbose=True)
    pingu.until(lambda: routed(pingu, want4, want6), "ppp0 and wan1 routed in both families")
    pingu.wait_ready()
    mark = pingu.mark()
    # Its IPv6 rounds go out from its own address (not the peer's) and pass, and pingu's
    # route, as the kernel files it, stays put.
    pingu.wait_log(r" ppp0/ipv6: round passed: ", after=mark, count=ROUNDS_TO_WATCH)
    assert routed(pingu, want4, want6)
    assert not pingu.find_log(r"(removed|installed) default .*dev ppp0 ", after=mark)
    assert pingu.find_log(rf" ppp0: echo \d to {T6} via \S+: reply in ", after=mark)
    assert leaves_via(lab, T6) == "ppp0"

    lab.cut_upstream("ppp0", 6)

    def ipv6_failed_over() -> bool:
        assert pingu.own_routes(4) == want4, "IPv4 moved while only IPv6 was cut"
        return pingu.own_routes(6) == without(want6, "ppp0")

    pingu.until(ipv6_failed_over, "ppp0's IPv6 route removed, its IPv4 route kept")
    assert leaves_via(lab, T6) == "wan1"
    lab.restore_upstream("ppp0", 6)
    pingu.until(lambda: routed(pingu, want4, want6), "ppp0's IPv6 route back")

    lab.carrier_down("ppp0")
    pingu.until(
        lambda: routed(pingu, without(want4, "ppp0"), without(want6, "ppp0")),
        "ppp0's carrier lost: both its routes removed",
    )
    pingu.wait_log(r" WARNING ppp0/ipv6 up -> down: carrier lost")
    lab.carrier_up("ppp0")
    pingu.until(lambda: routed(pingu, want4, want6), "ppp0's carrier back: both routes back")

    assert pingu.stop() == 0
    back = {(r.oif, r.gateway, r.metric, r.proto) for r in lab.default_routes(family=6)}
    assert back == {("ppp0", gateway, 1024, RA), ("wan1", LINK_LOCAL_GATEWAY, 1025, RA)}


# -- restarts and reloads ---------------------------------------------------------------


def saved_ipv6_gateway(pingu: RunningDaemon, uplink: str) -> str | None:
    try:
        document = json.loads(Path(pingu.config["state_file"]).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    lease = document.get("uplinks", {}).get(uplink, {}).get("ipv6", {}).get("lease") or {}
    gateway = lease.get("gateway")
    return str(gateway) if gateway else None


RA_LIFETIME = 600  # s: wan1's router lifetime in this test
LIFETIME_SLACK = 5  # s: rounding of the kernel's seconds and the time between two reads


def test_kill_9_and_restart_adopt_the_ipv6_routes_and_a_clean_stop_restores_the_ra_route(
    lab_factory: LabFactory, daemons: Daemons
) -> None:
    lab = lab_factory(["wan1", "wan2"], targets=[T4, T6])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    lab.ra_add("wan1", metric=1024, expires=RA_LIFETIME)
    advertised = time.monotonic()
    lab.ra_add("wan2", metric=1025)
    first = started(daemons, lab, dual_config({"wan1": 100, "wan2": 200}))
    first.until(
        lambda: saved_ipv6_gateway(first, "wan1") == saved_ipv6_gateway(first, "wan2") == "fe80::1",
        "the IPv6 leases saved",
    )
    assert first.kill() == -signal.SIGKILL
    # Nothing was cleaned up; the RA routes were deleted at capture, long ago, and no
    # advertisement will add them back: only the state file knows them now.
    assert (first.own_routes(4), first.own_routes(6)) == (v4(lab), v6(lab))
    assert not foreign(lab, 6)

    second = daemons.start(lab, first.config, name="restarted", verbose=True)
    second.wait_log(r"state file .* adopted .*wan1/ipv6: gateway fe80::1; wan1/ipv6: up")
    second.wait_ready()
    mark = second.mark()
    second.wait_log(r" wan1/ipv6: round passed: ", after=mark, count=ROUNDS_TO_WATCH)
    second.wait_log(r" wan2/ipv6: round passed: ", after=mark, count=ROUNDS_TO_WATCH)
    # Its own routes left by the killed daemon are adopted as they are: one per uplink and
    # family (own_routes fails on two), none added, none removed, nothing captured.
    assert routed(second, v4(lab), v6(lab))
    assert not second.find_log(r"(installed|removed) default ")
    assert not second.find_log("captured")

    # The restarted daemon probes and decides: wan1's IPv6 fails over and back.
    lab.cut_upstream("wan1", 6)
    second.until(lambda: second.own_routes(6) == without(v6(lab), "wan1"), "IPv6 failover")
    lab.restore_upstream("wan1", 6)
    second.until(lambda: routed(second, v4(lab), v6(lab)), "IPv6 failback")

    # Enough of the router's lifetime has gone for a route restored whole (with the
    # lifetime it was captured with) to be told apart from one restored with what is left.
    until(lambda: time.monotonic() - advertised > 3 * LIFETIME_SLACK, "time to pass", 30)
    lived_before = time.monotonic() - advertised
    assert second.stop() == 0
    restored = {(r.oif, r.gateway, r.metric, r.proto): r for r in lab.default_routes(family=6)}
    lived_after = time.monotonic() - advertised
    assert set(restored) == {
        ("wan1", LINK_LOCAL_GATEWAY, 1024, RA),
        ("wan2", LINK_LOCAL_GATEWAY, 1025, RA),
    }
    left = restored[("wan1", LINK_LOCAL_GATEWAY, 1024, RA)].expires
    assert left is not None, "the RA route was put back without its lifetime"
    assert RA_LIFETIME - lived_after - LIFETIME_SLACK <= left, (left, lived_after)
    assert left <= RA_LIFETIME - lived_before + 1, (left, lived_before)
    ipv4 = {(r.oif, r.gateway, r.metric, r.proto) for r in lab.default_routes()}
    assert ipv4 == {
        ("wan1", lab.gateway("wan1"), 1024, DHCP),
        ("wan2", lab.gateway("wan2"), 1025, DHCP),
    }


def test_sighup_adding_an_ipv6_target_manages_ipv6_and_removing_it_gives_the_ra_routes_back(
    lab: Lab, daemons: Daemons
) -> None:
    ipv4_only = {**dual_config({"wan1": 100, "wan2": 200}), "host": T4}
    pingu = daemons.start(lab, ipv4_only, verbose=True)
    pingu.until(lambda: pingu.own_routes(4) == v4(lab) and not foreign(lab, 4), "IPv4 routed")
    pingu.wait_ready()
    pingu.wait_log(r" wan1: round passed: ", count=ROUNDS_TO_WATCH)
    # An IPv4-only configuration leaves IPv6 alone: the RA routes stay, pingu adds none.
    ras = {(r.oif, r.gateway, r.metric, r.proto) for r in foreign(lab, 6)}
    assert ras == {("wan1", LINK_LOCAL_GATEWAY, 1024, RA), ("wan2", LINK_LOCAL_GATEWAY, 1025, RA)}
    assert pingu.own_routes(6) == {}

    mark = pingu.mark()
    pingu.write_config(dual_config({"wan1": 100, "wan2": 200}))
    pingu.send_signal(signal.SIGHUP)

    def ipv6_managed() -> bool:
        assert pingu.own_routes(4) == v4(lab), "IPv4 moved at the reload"
        return routed(pingu, v4(lab), v6(lab))

    pingu.until(ipv6_managed, "IPv6 managed: the RA routes captured, pingu's in place")
    pingu.wait_log(r" wan1/ipv6: captured default via fe80::1 dev wan1 proto 9 ", after=mark)
    pingu.wait_log(r" wan2/ipv6: captured default via fe80::1 dev wan2 proto 9 ", after=mark)
    pingu.wait_log(r" wan1/ipv6: round passed: ", after=mark, count=ROUNDS_TO_WATCH)

    mark = pingu.mark()
    pingu.write_config(ipv4_only)
    pingu.send_signal(signal.SIGHUP)

    def ipv6_released() -> bool:
        assert pingu.own_routes(4) == v4(lab), "IPv4 moved at the reload"
        back = {(r.oif, r.gateway, r.metric, r.proto) for r in foreign(lab, 6)}
        return pingu.own_routes(6) == {} and back == ras

    pingu.until(ipv6_released, "IPv6 dropped: pingu's routes removed, the RA routes put back")
    pingu.wait_log(r"reloaded .*: 2 uplinks", after=mark)
    for route in foreign(lab, 6):
        assert route.expires is not None, route
        assert 0 < route.expires <= 1800, route
    pingu.wait_log(r" wan1: round passed: ", after=mark, count=ROUNDS_TO_WATCH)
    assert pingu.own_routes(6) == {}  # not captured again
    assert pingu.stop() == 0


# -- forged replies -----------------------------------------------------------------------


async def readable(sock: socket.socket) -> None:
    """Until ``sock`` has something to read (without reading it)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


def echo_request(packet: bytes) -> tuple[str, str, int, int, bytes] | None:
    """(source, destination, identifier, sequence, payload) of an ICMPv6 echo request in an
    IPv6 packet without extension headers."""
    if len(packet) < 48 or packet[0] >> 4 != 6 or packet[6] != IPPROTO_ICMPV6:
        return None
    if packet[40] != ICMPV6_ECHO_REQUEST:
        return None
    src = socket.inet_ntop(socket.AF_INET6, packet[8:24])
    dst = socket.inet_ntop(socket.AF_INET6, packet[24:40])
    ident, seq = struct.unpack_from("!HH", packet, 44)
    return src, dst, ident, seq, packet[48:]


def pack_seq(seq: int) -> bytes:
    """The last two bytes of pingu's echo payload: the echo's sequence number."""
    return struct.pack("!H", seq)


def reply(src: str, dst: str, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMPv6 echo reply with its IPv6 header, built by scapy (checksum included)."""
    return bytes(IPv6(src=src, dst=dst) / ICMPv6EchoReply(id=ident, seq=seq, data=payload))


async def forge_replies(victim: str, targets: tuple[str, ...], forged: Counter[str]) -> None:
    """In the ISP's namespace: every echo request ``victim`` sends to a target through the
    ISP (seen on the ISP's end of the link, whether or not it can forward it) is answered
    three times, each reply wrong in one way only: from a source that is no target, with
    another identifier, or with a sequence number its round never sent (its payload made
    to match, as a replay of a later echo would be). Until cancelled."""
    listen = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IPV6))
    listen.bind(("cust", ETH_P_IPV6))
    listen.setblocking(False)
    send = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        while True:
            await readable(listen)
            while True:
                try:
                    packet, address = listen.recvfrom(2048)
                except BlockingIOError:
                    break
                request = echo_request(packet) if address[2] == PACKET_HOST else None
                if request is None or request[0] != victim or request[1] not in targets:
                    continue
                _, target, ident, seq, payload = request
                cookie = payload[:-2]
                later = (seq + 0x100) & 0xFFFF
                wrong = {
                    "source": reply("2001:db8:ffff::99", victim, ident, seq, payload),
                    "identifier": reply(target, victim, ident ^ 0x5A5A, seq, payload),
                    "sequence": reply(target, victim, ident, later, cookie + pack_seq(later)),
                }
                for kind, packet_out in wrong.items():
                    send.sendto(packet_out, (victim, 0))
                    forged[kind] += 1
    finally:
        listen.close()
        send.close()


def test_forged_echo_replies_never_make_a_cut_ipv6_uplink_pass(lab: Lab, daemons: Daemons) -> None:
    pingu = started(daemons, lab, dual_config({"wan1": 100, "wan2": 200}))
    forged: Counter[str] = Counter()
    victim = lab.local_address6("wan1")
    with NamespaceLoop(lab.isp_ns("wan1")) as isp:
        forger = isp.start(forge_replies(victim, lab.targets6, forged))
        try:
            until(lambda: min(forged.values(), default=0) >= 5, "the forger answering echoes")
            assert pingu.own_routes(6) == v6(lab)  # genuine replies still come: all is well
            lab.cut_upstream("wan1", 6)
            pingu.wait_log(r" WARNING wan1/ipv6 up -> down: ")
            mark = pingu.mark()
            answered = sum(forged.values())
            pingu.wait_log(r" wan1/ipv6: round failed: ", after=mark, count=ROUNDS_TO_WATCH)
            assert sum(forged.values()) > answered  # every failed round was answered falsely
        finally:
            isp.loop.call_soon_threadsafe(forger.cancel)
            with contextlib.suppress(concurrent.futures.CancelledError):
                forger.result(10)
    assert len(set(forged.values())) == 1, forged  # each echo got the three kinds
    # Not a single forged reply counted: every echo waited for is lost, in every round
    # after the one that took the path down (which may have had genuine replies).
    failed = pingu.find_log(r" wan1/ipv6: round failed: (?P<reason>.*)$", after=mark)
    assert failed
    assert all("no reply" in m["reason"] for m in failed), [m[0] for m in failed]
    assert not pingu.find_log(r" wan1/ipv6 down -> ")
    assert pingu.own_routes(6) == without(v6(lab), "wan1")
    assert pingu.own_routes(4) == v4(lab)
    assert pingu.stop() == 0


# -- router advertisements ----------------------------------------------------------------


RENEWALS = 5


def test_the_kernel_re_adding_its_ra_route_is_a_renewal_captured_once_without_a_gap(
    lab: Lab, daemons: Daemons
) -> None:
    pingu = started(daemons, lab, dual_config({"wan1": 100, "wan2": 200}), verbose=True)
    wan1 = lab.ifindex("wan1")
    mark = pingu.mark()
    renewal = (
        r" wan1/ipv6: captured default via fe80::1 dev wan1 proto 9 metric 1024 "
        r".*\((?P<what>[\w ]+) fe80::1\)$"
    )
    with DefaultRouteWatch(lab, family=6) as watch:
        for n in range(1, RENEWALS + 1):
            # Each advertisement of the router puts its route back (pingu deleted it).
            lab.ra_withdraw("wan1")  # the lab forgets it; it is gone from the table already
            lab.ra_add("wan1", metric=1024)
            pingu.wait_log(renewal, after=mark, count=n)
            pingu.until(lambda: not foreign(lab, 6, ("wan1",)), "the RA route deleted again")
        # A few rounds more: no fight with the kernel, no capture without a renewal.
        after = pingu.mark()
        pingu.wait_log(r" wan1/ipv6: round passed: ", after=after, count=ROUNDS_TO_WATCH)
        watch.settle()
    captures = pingu.find_log(renewal, after=mark)
    assert [m["what"] for m in captures] == ["gateway"] * RENEWALS  # never a new gateway
    ra = [(event, seen.proto) for event, seen, _ in watch.changes if seen.oif == wan1]
    assert Counter(ra) == {("RTM_NEWROUTE", RA): RENEWALS, ("RTM_DELROUTE", RA): RENEWALS}, ra
    # pingu's own route was never touched: in every table the box went through.
    own = [s for s in watch.initial if s.proto == PROTO and s.oif == wan1]
    assert len(own) == 1
    assert all(own[0] in table for table in watch.tables())
    assert not [d for d in pingu.decisions("wan1/ipv6", after=mark) if d != "passed"]
    assert routed(pingu, v4(lab), v6(lab))
    assert pingu.stop() == 0


def link_mac(lab: Lab, ns: str, ifname: str) -> bytes:
    (link,) = json.loads(lab.run(ns, ["ip", "-j", "link", "show", "dev", ifname]).stdout)
    return bytes.fromhex(str(link["address"]).replace(":", ""))


def router_advert(source_mac: bytes, lifetime: int) -> bytes:
    """A router advertisement of the ISP's fe80::1 to every node of the link, as radvd
    sends it (hop limit 255, its link-layer address), built by scapy."""
    mac = ":".join(f"{b:02x}" for b in source_mac)
    advert = IPv6(src=LINK_LOCAL_GATEWAY, dst="ff02::1", hlim=255) / ICMPv6ND_RA(
        routerlifetime=lifetime
    )
    return bytes(advert / ICMPv6NDOptSrcLLAddr(lladdr=mac))


async def advertise(lifetime: int, source_mac: bytes) -> None:
    """Send one advertisement on the ISP's end of the link (run in the ISP's namespace)."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IPV6)) as sock:
        frame = router_advert(source_mac, lifetime)
        sock.sendto(frame, ("cust", ETH_P_IPV6, 0, 0, ALL_NODES_MAC))


def kernel_ra_route(lab: Lab) -> list[Route]:
    """The route the daemon namespace's kernel installs for wan1's router."""
    return [r for r in foreign(lab, 6, ("wan1",)) if r.proto == RA and r.expires is not None]


@pytest.fixture
def advertised_lab(lab_factory: LabFactory) -> Lab:
    """wan1 and wan2 with DHCP leases; wan2 with an RA route (simulated); wan1's comes
    from a real advertisement of its router, turned into a route by the kernel."""
    lab = lab_factory(["wan1", "wan2"], targets=[T4, T6])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    lab.ra_add("wan2", metric=1025)
    mac = link_mac(lab, "isp:wan1", "cust")
    run_in_namespace(lab.isp_ns("wan1"), advertise(1800, mac))
    until(lambda: bool(kernel_ra_route(lab)), "the kernel's route for wan1's router")
    return lab


def test_a_router_advert_with_lifetime_0_takes_ipv6_down_at_once_and_a_new_one_brings_it_back(
    advertised_lab: Lab, daemons: Daemons
) -> None:
    lab = advertised_lab
    mac = link_mac(lab, "isp:wan1", "cust")
    pingu = started(daemons, lab, dual_config({"wan1": 100, "wan2": 200}), verbose=True)
    pingu.wait_log(r" wan1/ipv6: round passed: ", count=1)
    mark = pingu.mark()

    # The router withdraws itself. The kernel has no route of its own to delete (pingu
    # did), so the table says nothing: only the advertisement tells.
    run_in_namespace(lab.isp_ns("wan1"), advertise(0, mac))

    def ipv6_withdrawn() -> bool:
        assert pingu.own_routes(4) == v4(lab), "IPv4 moved at an IPv6 advertisement"
        return pingu.own_routes(6) == without(v6(lab), "wan1")

    pingu.until(ipv6_withdrawn, "wan1's IPv6 route removed")
    pingu.wait_log(
        r" WARNING wan1/ipv6 up -> down: router fe80::1 withdrew as default router "
        r"\(lifetime 0\); route metric 100 removed",
        after=mark,
    )
    # Not a failed round: its upstream works, and nothing is probed without a router.
    assert not pingu.find_log(r" wan1/ipv6: round failed: ", after=mark)
    assert leaves_via(lab, T6) == "wan2"

    # The router is back: the kernel adds its route, pingu captures it as a new gateway,
    # probes at once, and routes wan1's IPv6 again.
    back = pingu.mark()
    run_in_namespace(lab.isp_ns("wan1"), advertise(1800, mac))
    pingu.until(lambda: routed(pingu, v4(lab), v6(lab)), "wan1's IPv6 route back")
    pingu.wait_log(
        r" wan1/ipv6: captured default via fe80::1 dev wan1 proto 9 metric 1024 .*"
        r"\(new gateway fe80::1\)",
        after=back,
    )
    pingu.wait_log(r" WARNING wan1/ipv6 down -> up: ", after=back)
    assert leaves_via(lab, T6) == "wan1"
    assert not [d for d in pingu.decisions("wan1/ipv4", after=mark) if d != "passed"]

    assert pingu.stop() == 0
    (restored,) = kernel_ra_route(lab)  # the kernel's route is put back, with its lifetime
    assert (restored.gateway, restored.metric) == (LINK_LOCAL_GATEWAY, 1024)
