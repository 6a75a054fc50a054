"""The prober on the real kernel, run inside the lab's daemon namespace, for IPv4 and IPv6:
exact loss and delay, independence from routes and rp_filter (netfilter's rpfilter for
IPv6), point-to-point uplinks, failures that send nothing, gateways that do not answer
ARP or neighbour solicitations, forged replies, concurrency and the early verdict."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6

from pingu.adapters.prober import PacketProber
from pingu.domain.commands import (
    StartProbe,
)
from pingu.domain.model import Family, RoundResult
from pingu.lab import Lab, icmp
from tests.netns.conftest import NamespaceLoop

pytestmark = pytest.mark.netns

T1, T2 = "203.0.113.10", "203.0.113.11"  # the conftest lab's targets
T1_6, T2_6 = "2001:db8:ffff::10", "2001:db8:ffff::11"  # and its IPv6 ones (the lab's default)
TARGETS = {Family.IPV4: (T1, T2), Family.IPV6: (T1_6, T2_6)}
BOTH = pytest.mark.parametrize("family", [Family.IPV4, Family.IPV6], ids=["ipv4", "ipv6"])
ROUND_TIMEOUT = 30.0
POLL_TIMEOUT = 10.0
T = TypeVar("T")


@pytest.fixture
def daemon(lab: Lab) -> Iterator[NamespaceLoop]:
    with NamespaceLoop(lab.daemon_ns) as loop:
        yield loop


@pytest.fixture
def prober() -> Iterator[PacketProber]:
    prober = PacketProber()
    yield prober
    prober.close()


def probe_for(lab: Lab, uplink: str, family: Family = Family.IPV4, **changes: Any) -> StartProbe:
    """A round on ``uplink`` as the core would ask it: for IPv6 from the uplink's global
    address (the core names it), via the ISP's link-local."""
    p2p = uplink == "ppp0"
    v6 = family is Family.IPV6
    fields: dict[str, Any] = {
        "uplink": uplink,
        "ifindex": lab.ifindex(uplink),
        "gateway": None if p2p else lab.gateway6(uplink) if v6 else lab.gateway(uplink),
        "point_to_point": p2p,
        "source": lab.local_address6(uplink) if v6 else None,
        "targets": TARGETS[family][:1],
        "count": 5,
        "interval_ms": 20,
        "timeout_ms": 500,
        "family": family,
    }
    fields.update(changes)
    fields.setdefault("max_lost", fields["count"])
    fields.setdefault("decide_early", False)  # every echo waited for, unless asked
    return StartProbe(**fields)


def local_address(lab: Lab, uplink: str, family: Family) -> str:
    return lab.local_address6(uplink) if family is Family.IPV6 else lab.local_address(uplink)


def assert_not_sent(lab: Lab, result: RoundResult, reason: str) -> None:
    """The round failed for ``reason`` without an echo reaching any target."""
    assert result.error == reason
    assert [(t.sent, t.error) for t in result.targets] == [(0, reason)] * len(result.targets)
    assert lab.responder_log() == []


def wait_until(condition: Any, what: str, timeout: float = POLL_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def our_echoes(lab: Lab, prober: PacketProber, uplink: str) -> list[Any]:
    ident = prober.last_round[uplink].ident
    return [e for e in lab.responder_log() if e.ident == ident]


def link_stats(lab: Lab, ns: str, ifname: str) -> dict[str, Any]:
    (link,) = json.loads(lab.run(ns, ["ip", "-j", "-s", "link", "show", "dev", ifname]).stdout)
    stats: dict[str, Any] = link["stats64"]
    return stats


def reverse_path_drops(lab: Lab) -> int:
    lines = lab.run("daemon", ["cat", "/proc/net/netstat"]).stdout.splitlines()
    names, values = (line.split() for line in lines if line.startswith("TcpExt:"))
    return int(dict(zip(names, values, strict=True))["IPReversePathFilter"])


# --------------------------------------------------------------------- measurement


@BOTH
@pytest.mark.parametrize("share", [0.0, 0.2, 0.6, 1.0])
def test_loss_is_counted_exactly(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, share: float, family: Family
) -> None:
    lab.set_loss(TARGETS[family][0], share)
    probe = probe_for(lab, "wan1", family, count=10, timeout_ms=300)
    result = daemon.run(prober.run_round(probe))
    (target,) = result.targets
    expected_lost = math.floor(10 * share)
    assert (target.sent, target.lost, target.error) == (10, expected_lost, None)
    assert len(target.delays_ms) == 10 - expected_lost
    assert not result.early
    echoes = our_echoes(lab, prober, "wan1")
    assert [e.seq for e in echoes] == list(range(10))
    assert sum(not e.answered for e in echoes) == expected_lost


@BOTH
@pytest.mark.parametrize("delay_ms", [50, 200])
def test_delay_is_measured_within_10_ms(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, delay_ms: int, family: Family
) -> None:
    lab.set_delay(TARGETS[family][0], delay_ms)
    probe = probe_for(lab, "wan1", family, interval_ms=50, timeout_ms=1000)
    result = daemon.run(prober.run_round(probe))
    (target,) = result.targets
    assert target.received == 5
    assert all(abs(d - delay_ms) <= 10 for d in target.delays_ms), target.delays_ms


def test_a_blocked_event_loop_does_not_inflate_the_delay(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber
) -> None:
    lab.set_delay(T1, 50)

    async def round_on_a_blocked_loop() -> RoundResult:
        # The loop stalls 300 ms right after the first echo: its reply (due at 50 ms) is
        # read late, but the kernel stamped it when it arrived.
        asyncio.get_running_loop().call_later(0.01, time.sleep, 0.3)
        return await prober.run_round(probe_for(lab, "wan1", count=3, timeout_ms=1000))

    (target,) = daemon.run(round_on_a_blocked_loop()).targets
    assert target.received == 3
    assert all(abs(d - 50) <= 10 for d in target.delays_ms), target.delays_ms


def test_echoes_leave_through_the_chosen_uplink_against_the_routes_and_strict_rp_filter(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber
) -> None:
    lab.dhcp_add("wan2")  # the only default route points at the other uplink
    for conf in ("all", "default", "wan1", "wan2"):
        lab.run("daemon", ["sysctl", "-q", "-w", f"net.ipv4.conf.{conf}.rp_filter=1"])
    before = {u: link_stats(lab, f"isp:{u}", "cust")["rx"]["packets"] for u in ("wan1", "wan2")}
    rp_drops = reverse_path_drops(lab)

    result = daemon.run(prober.run_round(probe_for(lab, "wan1", count=10)))

    assert result.targets[0].received == 10
    after = {u: link_stats(lab, f"isp:{u}", "cust")["rx"]["packets"] for u in ("wan1", "wan2")}
    assert after["wan1"] - before["wan1"] >= 10
    assert after["wan2"] - before["wan2"] < 10
    assert {e.src for e in our_echoes(lab, prober, "wan1")} == {lab.local_address("wan1")}
    # The IP stack dropped the replies as martians; the prober counted them all the same.
    assert reverse_path_drops(lab) - rp_drops >= 10


def nft_counter(lab: Lab, table: str) -> int:
    """The packets counted by the only counter of nftables ``table`` (family ip6)."""
    listing = json.loads(lab.run("daemon", ["nft", "-j", "list", "table", "ip6", table]).stdout)
    (counter,) = [
        expr["counter"]
        for item in listing["nftables"]
        for expr in item.get("rule", {}).get("expr", ())
        if "counter" in expr
    ]
    return int(counter["packets"])


@pytest.mark.parametrize("routes", ["no-ipv6-route", "default-via-wan2"])
def test_ipv6_echoes_leave_through_the_chosen_uplink_whatever_the_routes(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, routes: str
) -> None:
    if routes == "default-via-wan2":
        lab.ra_add("wan2")  # the only IPv6 default route points at the other uplink
    expected = ["wan2"] if routes == "default-via-wan2" else []
    assert [r.oif for r in lab.default_routes(family=6)] == expected
    # IPv6 has no rp_filter sysctl; netfilter's strict reverse-path check stands for it:
    # a packet whose source is not routed back out of the interface it came in on is
    # dropped (and counted) before the IP stack takes it.
    for command in (
        "add table ip6 pingu_rpf",
        "add chain ip6 pingu_rpf pre { type filter hook prerouting priority -300 ; }",
        "add rule ip6 pingu_rpf pre fib saddr . iif oif missing counter drop",
    ):
        lab.run("daemon", ["nft", command])
    before = {u: link_stats(lab, f"isp:{u}", "cust")["rx"]["packets"] for u in ("wan1", "wan2")}

    result = daemon.run(prober.run_round(probe_for(lab, "wan1", Family.IPV6, count=10)))

    assert result.targets[0].received == 10
    after = {u: link_stats(lab, f"isp:{u}", "cust")["rx"]["packets"] for u in ("wan1", "wan2")}
    assert after["wan1"] - before["wan1"] >= 10
    assert after["wan2"] - before["wan2"] < 10
    assert {e.src for e in our_echoes(lab, prober, "wan1")} == {lab.local_address6("wan1")}
    # The IP stack never saw the replies; the prober counted them all the same.
    assert nft_counter(lab, "pingu_rpf") >= 10


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (None, "no IPv6 address on wan1"),
        ("2001:db8:2::2", "2001:db8:2::2 is not an address of wan1"),  # wan2's
        ("100.64.1.2", "100.64.1.2 is not an IPv6 address"),
    ],
    ids=["none", "another-uplink-s", "ipv4"],
)
def test_an_ipv6_round_needs_a_source_of_its_own_uplink(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, source: str | None, reason: str
) -> None:
    result = daemon.run(prober.run_round(probe_for(lab, "wan1", Family.IPV6, source=source)))
    assert_not_sent(lab, result, reason)


def test_a_tentative_source_is_not_sent_from(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber
) -> None:
    lab.redo_dad("wan2", transmits=30)  # tentative for 30 s from here
    assert "tentative" in (lab.address6_flags("wan2") or ())
    result = daemon.run(prober.run_round(probe_for(lab, "wan2", Family.IPV6)))
    assert "tentative" in (lab.address6_flags("wan2") or ())  # so it was, all along
    source = lab.local_address6("wan2")
    assert_not_sent(lab, result, f"{source} on wan2 is tentative (duplicate address detection)")


def test_an_address_that_failed_duplicate_address_detection_is_not_sent_from(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber
) -> None:
    duplicate = "2001:db8:1::99"
    lab.run("isp:wan1", ["ip", "addr", "add", f"{duplicate}/64", "dev", "cust", "nodad"])
    lab.run("daemon", ["ip", "addr", "add", f"{duplicate}/64", "dev", "wan1"])  # with DAD

    def failed() -> bool:
        text = lab.run("daemon", ["ip", "-o", "-6", "addr", "show", "dev", "wan1"]).stdout
        return any(duplicate in line and "dadfailed" in line for line in text.splitlines())

    wait_until(failed, f"DAD to fail for {duplicate}")
    result = daemon.run(prober.run_round(probe_for(lab, "wan1", Family.IPV6, source=duplicate)))
    assert_not_sent(lab, result, f"{duplicate} on wan1 failed duplicate address detection")


@BOTH
def test_the_point_to_point_uplink_is_probed(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, family: Family
) -> None:
    first, second = TARGETS[family]
    result = daemon.run(prober.run_round(probe_for(lab, "ppp0", family, targets=(first, second))))
    assert [(t.target, t.received) for t in result.targets] == [(first, 5), (second, 5)]
    assert prober.last_round["ppp0"].gateway_mac is None
    echoes = our_echoes(lab, prober, "ppp0")
    assert len(echoes) == 10
    assert {e.src for e in echoes} == {local_address(lab, "ppp0", family)}


# --------------------------------------------------------------------- failures


@BOTH
@pytest.mark.parametrize("uplink", ["wan2", "ppp0"])
def test_carrier_down_fails_at_once_without_sending(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, uplink: str, family: Family
) -> None:
    lab.carrier_down(uplink)
    lab.responder_log(clear=True)
    tx_before = link_stats(lab, "daemon", uplink)["tx"]

    result = daemon.run(prober.run_round(probe_for(lab, uplink, family)))

    assert result.error == f"carrier down on {uplink}"
    assert [(t.sent, t.error) for t in result.targets] == [(0, f"carrier down on {uplink}")]
    assert link_stats(lab, "daemon", uplink)["tx"] == tx_before
    lab.carrier_up(uplink)
    assert lab.responder_log() == []


def test_no_address_fails_at_once(lab: Lab, daemon: NamespaceLoop, prober: PacketProber) -> None:
    lab.run("daemon", ["ip", "addr", "flush", "dev", "wan2"])
    result = daemon.run(prober.run_round(probe_for(lab, "wan2")))
    assert result.error == "no IPv4 address on wan2"
    assert lab.responder_log() == []


@BOTH
def test_an_administratively_down_uplink_fails_at_once(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, family: Family
) -> None:
    lab.run("daemon", ["ip", "link", "set", "dev", "wan2", "down"])
    result = daemon.run(prober.run_round(probe_for(lab, "wan2", family)))
    assert_not_sent(lab, result, "wan2 is administratively down")


@pytest.mark.parametrize("gateway", ["100.64.1.77", "fe80::77", "2001:db8:1::77"])
def test_a_gateway_that_does_not_answer_fails_the_round_with_that_reason(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, gateway: str
) -> None:
    family, asked_with = (Family.IPV6, "NDP") if ":" in gateway else (Family.IPV4, "ARP")
    probe = probe_for(lab, "wan1", family, gateway=gateway, timeout_ms=200)
    result = daemon.run(prober.run_round(probe))
    assert_not_sent(lab, result, f"{asked_with}: no answer from {gateway} on wan1")


def test_the_gateway_s_global_ipv6_address_serves_as_well(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber
) -> None:
    probe = probe_for(lab, "wan1", Family.IPV6, gateway=lab.gateway6_global("wan1"))
    assert daemon.run(prober.run_round(probe)).targets[0].received == 5
    link_local = daemon.run(prober.run_round(probe_for(lab, "wan1", Family.IPV6)))
    assert link_local.targets[0].received == 5
    # One ISP, one MAC, whichever of its addresses was asked for.
    assert prober.last_round["wan1"].gateway_mac is not None


@BOTH
def test_a_recreated_uplink_is_not_probed_under_its_old_ifindex(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, family: Family
) -> None:
    probe = probe_for(lab, "wan2", family)
    lab.recreate_uplink("wan2")
    result = daemon.run(prober.run_round(probe))
    assert result.error == f"wan2: no interface #{probe.ifindex}"


def test_rounds_leave_no_socket_open(lab: Lab, daemon: NamespaceLoop, prober: PacketProber) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for family in (Family.IPV4, Family.IPV6):
        daemon.run(prober.run_round(probe_for(lab, "wan1", family, count=2)))
        daemon.run(prober.run_round(probe_for(lab, "ppp0", family, count=2)))
        daemon.run(prober.run_round(probe_for(lab, "wan2", family, gateway=None)))
    daemon.run(prober.run_round(probe_for(lab, "wan1", gateway="100.64.1.77", timeout_ms=50)))
    daemon.run(
        prober.run_round(probe_for(lab, "wan1", Family.IPV6, gateway="fe80::77", timeout_ms=50))
    )
    # The last sockets are closed on a worker thread (close_off_loop): give it its moment.
    wait_until(lambda: len(os.listdir("/proc/self/fd")) <= before, "the sockets to be closed")
    assert len(os.listdir("/proc/self/fd")) == before


@BOTH
def test_a_round_without_any_answer_forgets_the_gateways_mac(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, family: Family
) -> None:
    probe = probe_for(lab, "wan1", family, count=2, timeout_ms=200)
    assert daemon.run(prober.run_round(probe)).targets[0].received == 2
    old_mac = prober.last_round["wan1"].gateway_mac
    lab.run("isp:wan1", ["ip", "link", "set", "dev", "cust", "address", "02:00:5e:00:53:01"])

    stale = daemon.run(prober.run_round(probe))  # still sent to the old MAC
    fresh = daemon.run(prober.run_round(probe))

    assert stale.targets[0].received == 0
    assert prober.last_round["wan1"].gateway_mac == "02:00:5e:00:53:01" != old_mac
    assert fresh.targets[0].received == 2


# --------------------------------------------------------------------- forged replies


async def readable(sock: socket.socket) -> None:
    """Until ``sock`` has something to read (without reading it)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(sock.fileno(), ready.set_result, None)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


def forged_reply(src: str, dst: str, ident: int, seq: int, payload: bytes) -> bytes:
    """An echo reply built by scapy (an oracle of its own, not the lab's packets)."""
    if ":" in dst:
        return bytes(IPv6(src=src, dst=dst) / ICMPv6EchoReply(id=ident, seq=seq, data=payload))
    return bytes(IP(src=src, dst=dst) / ICMP(type=0, id=ident, seq=seq) / payload)


async def forge_replies(victim: str, target: str, forged: Counter[str]) -> None:
    """In the internet namespace: answer every echo from ``victim`` to ``target`` with a
    reply from the wrong source, one with the wrong identifier, one with the wrong cookie,
    then the right reply twice (until cancelled). The replies are written whole (IP header
    included) on a raw socket of the target's family."""
    family = icmp.family_of(target)
    request, _reply = icmp.echo_kinds(family)
    listen = icmp.open_raw_socket(family, only=request)
    send = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
    wrong_source = "2001:db8:ffff::99" if family == socket.AF_INET6 else "203.0.113.99"

    def answer(kind: str, src: str, ident: int, seq: int, payload: bytes) -> None:
        send.sendto(forged_reply(src, victim, ident, seq, payload), (victim, 0))
        forged[kind] += 1

    def requests() -> list[icmp.Echo]:
        echoes = []
        with contextlib.suppress(BlockingIOError):
            while True:
                echo = icmp.receive_echo(listen)
                if echo is not None and echo.kind == request:
                    echoes.append(echo)
        return echoes

    try:
        while True:
            await readable(listen)
            for echo in requests():
                if (echo.src, echo.dst) != (victim, target):
                    continue
                spoiled = bytes([echo.payload[0] ^ 0xFF]) + echo.payload[1:]
                answer("source", wrong_source, echo.ident, echo.seq, echo.payload)
                answer("ident", target, echo.ident ^ 0x5A5A, echo.seq, echo.payload)
                answer("cookie", target, echo.ident, echo.seq, spoiled)
                answer("genuine", target, echo.ident, echo.seq, echo.payload)
                answer("genuine", target, echo.ident, echo.seq, echo.payload)
    finally:
        listen.close()
        send.close()


@BOTH
def test_forged_and_duplicated_replies_do_not_count(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, family: Family
) -> None:
    target = TARGETS[family][1]
    lab.set_loss(target, 1.0)  # the responder is silent: every reply is the forger's
    forged: Counter[str] = Counter()
    with NamespaceLoop(lab.internet_ns) as internet:
        victim = local_address(lab, "wan1", family)
        forger = internet.start(forge_replies(victim, target, forged))
        probe = probe_for(lab, "wan1", family, targets=(target,), interval_ms=100)
        result = daemon.run(prober.run_round(probe))
        internet.loop.call_soon_threadsafe(forger.cancel)
    (result_of_target,) = result.targets
    assert forged == {"source": 5, "ident": 5, "cookie": 5, "genuine": 10}
    assert (result_of_target.sent, result_of_target.received) == (5, 5)
    diagnostics = prober.last_round["wan1"]
    # The last echo's copy may come after its first reply ended the round: it is then not
    # read at all. Every earlier copy is read, and counted as a duplicate, not a reply.
    assert diagnostics.duplicates in (4, 5)
    # Wrong source and wrong cookie pass the kernel filter and are ignored in Python; the
    # wrong identifiers never leave the kernel.
    assert diagnostics.ignored == 10


# --------------------------------------------------------------------- concurrency, early verdict


def test_rounds_on_two_uplinks_run_at_the_same_time(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber
) -> None:
    async def both() -> list[RoundResult]:
        rounds = [prober.run_round(probe_for(lab, u, interval_ms=200)) for u in ("wan1", "wan2")]
        return list(await asyncio.gather(*rounds))

    results = daemon.run(both())
    assert [r.targets[0].received for r in results] == [5, 5]
    idents = {prober.last_round[u].ident: u for u in ("wan1", "wan2")}
    order = [idents[e.ident] for e in sorted(lab.responder_log(), key=lambda e: e.time)]
    assert sorted(order) == ["wan1"] * 5 + ["wan2"] * 5
    switches = sum(a != b for a, b in itertools.pairwise(order))
    assert switches >= 4, order  # one after the other would switch once


def test_rounds_of_both_families_run_on_one_uplink_at_the_same_time(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber
) -> None:
    probes = [probe_for(lab, "wan1", f, interval_ms=200) for f in (Family.IPV4, Family.IPV6)]
    seen: dict[Family, int] = {}

    async def both() -> list[RoundResult]:
        async def one(probe: StartProbe) -> RoundResult:
            result = await prober.run_round(probe)
            seen[probe.family] = prober.last_round["wan1"].ident  # before the other ends
            return result

        return list(await asyncio.gather(*(one(p) for p in probes)))

    results = daemon.run(both())
    assert [(r.targets[0].target, r.targets[0].received) for r in results] == [(T1, 5), (T1_6, 5)]
    rounds = {(seen[Family.IPV4], T1): "v4", (seen[Family.IPV6], T1_6): "v6"}
    log = sorted(lab.responder_log(), key=lambda e: e.time)
    order = [rounds[e.ident, e.dst] for e in log if (e.ident, e.dst) in rounds]
    assert sorted(order) == ["v4"] * 5 + ["v6"] * 5
    switches = sum(a != b for a, b in itertools.pairwise(order))
    assert switches >= 4, order  # one after the other would switch once


@BOTH
def test_early_verdict_stops_a_round_that_lost_more_than_max_lost(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, family: Family
) -> None:
    first, second = TARGETS[family]
    lab.set_loss(second, 1.0)
    probe = probe_for(
        lab,
        "wan1",
        family,
        targets=(first, second),
        count=10,
        interval_ms=100,
        timeout_ms=250,
        max_lost=1,
    )
    result = daemon.run(prober.run_round(probe))
    good, bad = result.targets
    assert result.early
    assert (good.sent, good.received) == (10, 10)
    assert bad.received == 0
    assert 2 <= bad.sent < 10
    assert bad.lost == 2  # the round was decided at its second expired echo
    assert bad.abandoned == bad.sent - 2  # the rest in flight: not waited for, not lost
    to_bad = [e for e in our_echoes(lab, prober, "wan1") if e.dst == second]
    assert len(to_bad) == bad.sent


def round_with_t2_dead(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber, **settings: Any
) -> RoundResult:
    """One round of 10 echoes to T1 (answering) and T2 (silent), decided as early as it can."""
    lab.set_loss(T2, 1.0)
    probe = probe_for(lab, "wan1", targets=(T1, T2), count=10, decide_early=True, **settings)
    return daemon.run(prober.run_round(probe))


def test_a_round_whose_quorum_cannot_be_reached_stops_on_every_target(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber
) -> None:
    result = round_with_t2_dead(
        lab, daemon, prober, interval_ms=100, timeout_ms=250, max_lost=1, min_hosts_up=2
    )
    good, bad = result.targets
    assert result.early
    assert bad.lost == 2
    # T2 can no longer pass, so neither can the round: T1 stopped with it.
    assert good.sent < 10
    assert good.lost == 0
    sent = [e for e in our_echoes(lab, prober, "wan1") if e.dst == T1]
    assert len(sent) == good.sent


def test_a_round_whose_quorum_is_certain_stops_as_a_pass(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber
) -> None:
    result = round_with_t2_dead(
        lab,
        daemon,
        prober,
        interval_ms=50,
        timeout_ms=400,  # T2's first echo expires after T1's seventh reply
        max_lost=3,
        min_hosts_up=1,
        max_delay_ms=500,
    )
    good, bad = result.targets
    assert result.early
    # T1 passes for certain once even the 3 echoes left, lost, would keep it passing.
    assert good.received == 7
    assert good.lost == 0
    assert good.sent < 10 or good.abandoned > 0
    # T2's echoes were never given up on as lost: the round ended before their timeout.
    assert (bad.received, bad.lost) == (0, 0)
    assert bad.abandoned == bad.sent > 0


def test_a_single_target_round_stops_once_its_pass_is_certain(
    lab: Lab, daemon: NamespaceLoop, prober: PacketProber
) -> None:
    probe = probe_for(
        lab, "wan1", count=10, interval_ms=50, timeout_ms=500, max_lost=2, max_delay_ms=1000,
        decide_early=True,
    )  # fmt: skip
    result = daemon.run(prober.run_round(probe))
    (target,) = result.targets
    assert result.early
    assert (target.received, target.lost) == (8, 0)
    assert len(our_echoes(lab, prober, "wan1")) == target.sent < 10
