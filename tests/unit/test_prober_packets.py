"""The prober's packets, reply matching and BPF filters, without a network (scapy is the
independent oracle for the bytes; the kernel itself runs the filters on a socketpair), for
IPv4 and IPv6."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP
from scapy.utils6 import in6_getnsma, in6_getnsmac

from pingu.adapters import bpf
from pingu.adapters import icmp_packets as pk
from pingu.adapters.bpf import Insn, attach_filter
from pingu.adapters.icmp_packets import Echo, Outcome, RoundMatcher
from pingu.adapters.prober import PacketProber, close_off_loop, interface_ipv6, kernel_time_ns
from pingu.domain.commands import (
    StartProbe,
)
from pingu.domain.model import Family

LOCAL, T1, T2, GW = "100.64.1.2", "203.0.113.10", "203.0.113.11", "100.64.1.1"
LOCAL6, T1_6, T2_6, GW6 = "2001:db8:1::2", "2001:db8:ffff::10", "2001:db8:ffff::11", "fe80::1"
IDENT, COOKIE = 0x4D2C, bytes(range(16))
MS = 1_000_000
OUR_MAC, GW_MAC = "02:00:00:00:00:01", "02:00:00:00:00:09"


def reply(
    src: str = T1,
    dst: str = LOCAL,
    ident: int = IDENT,
    seq: int = 0,
    payload: bytes | None = None,
    **ip: Any,
) -> bytes:
    """An echo reply as scapy builds it: ICMPv6 when ``dst`` is an IPv6 address."""
    data = pk.echo_payload(COOKIE, seq) if payload is None else payload
    if ":" in dst:
        return bytes(IPv6(src=src, dst=dst, **ip) / ICMPv6EchoReply(id=ident, seq=seq, data=data))
    return bytes(IP(src=src, dst=dst, **ip) / ICMP(type=0, id=ident, seq=seq) / data)


reply6 = functools.partial(reply, src=T1_6, dst=LOCAL6)


def advert(target: str = GW6, mac: str = GW_MAC, hlim: int = 255, **na: Any) -> bytes:
    """The neighbour advertisement ``target`` answers a solicitation with."""
    flags = {"R": 1, "S": 1, **na}
    packet = IPv6(src=target, dst=LOCAL6, hlim=hlim) / ICMPv6ND_NA(tgt=target, **flags)
    return bytes(packet / ICMPv6NDOptDstLLAddr(lladdr=mac))


# --------------------------------------------------------------------- building


def test_echo_request_is_byte_for_byte_what_scapy_builds() -> None:
    ours = pk.echo_request_packet(LOCAL, T1, IDENT, 7, COOKIE, ip_id=0x1234)
    theirs = IP(src=LOCAL, dst=T1, id=0x1234, ttl=64) / ICMP(type=8, id=IDENT, seq=7)
    assert ours == bytes(theirs / (COOKIE + b"\x00\x07"))
    assert pk.checksum(ours[:20]) == 0
    assert pk.checksum(ours[20:]) == 0


def test_odd_length_checksum() -> None:
    data = b"\x08\x00\x00\x00\x00\x01\x00\x02abc"
    assert pk.checksum(data[:2] + struct.pack("!H", pk.checksum(data)) + data[4:]) == 0


def test_arp_request_is_what_scapy_builds() -> None:
    mac = bytes.fromhex("020000000001")
    ours = pk.arp_request(mac, LOCAL, GW)
    theirs = ARP(op=1, hwsrc="02:00:00:00:00:01", psrc=LOCAL, hwdst="00:00:00:00:00:00", pdst=GW)
    assert ours == bytes(theirs)


# --------------------------------------------------------------------- parsing


def test_an_echo_reply_is_parsed() -> None:
    parsed = pk.parse_echo_reply(reply(seq=3))
    assert parsed == pk.EchoReply(T1, LOCAL, IDENT, 3, COOKIE + b"\x00\x03")


def test_ip_options_are_skipped() -> None:
    packet = reply(seq=3, options=[b"\x01\x01\x01\x00"])  # IHL 6
    assert packet[0] == 0x46
    parsed = pk.parse_echo_reply(packet)
    assert parsed is not None
    assert parsed.seq == 3


@pytest.mark.parametrize(
    "packet",
    [
        bytes(IP(src=T1, dst=LOCAL) / ICMP(type=8, id=IDENT, seq=0) / COOKIE),  # a request
        bytes(IP(src=T1, dst=LOCAL) / ICMP(type=0, code=1, id=IDENT) / COOKIE),
        bytes(IP(src=T1, dst=LOCAL) / UDP() / COOKIE),
        bytes(IP(src=T1, dst=LOCAL, flags="MF") / ICMP(type=0, id=IDENT) / COOKIE),
        bytes(IP(src=T1, dst=LOCAL, frag=10) / ICMP(type=0, id=IDENT) / COOKIE),
        bytes(IP(src=T1, dst=LOCAL, chksum=0x1111) / ICMP(type=0, id=IDENT) / COOKIE),
        bytes(IP(src=T1, dst=LOCAL) / ICMP(type=0, id=IDENT, chksum=0x1111) / COOKIE),
        reply()[:30],  # truncated
        b"\x60" + reply()[1:],  # not IPv4
        b"",
    ],
    ids=[
        "request",
        "code",
        "udp",
        "more-fragments",
        "fragment",
        "ip-checksum",
        "icmp-checksum",
        "truncated",
        "ipv6",
        "empty",
    ],
)
def test_what_is_not_a_valid_echo_reply(packet: bytes) -> None:
    assert pk.parse_echo_reply(packet) is None


def test_arp_reply_is_parsed_and_requests_are_not() -> None:
    answer = ARP(op=2, hwsrc="02:00:00:00:00:09", psrc=GW, hwdst="02:00:00:00:00:01", pdst=LOCAL)
    assert pk.parse_arp_reply(bytes(answer)) == pk.ArpReply(
        GW, bytes.fromhex("020000000009"), LOCAL
    )
    assert pk.parse_arp_reply(bytes(ARP(op=1, psrc=GW, pdst=LOCAL))) is None
    assert pk.parse_arp_reply(bytes(answer)[:20]) is None


# --------------------------------------------------------------------- matching


def matcher(timeout_ms: float = 1000) -> RoundMatcher:
    m = RoundMatcher(LOCAL, IDENT, COOKIE, [T1, T2], timeout_ms)
    for seq in range(3):
        m.sent(T1, seq, real_ns=1000 * MS + seq * 100 * MS, mono_ns=5000 * MS + seq * 100 * MS)
    m.sent(T2, 0, real_ns=1000 * MS, mono_ns=5000 * MS)
    return m


def test_a_reply_matches_and_its_delay_is_the_kernel_one() -> None:
    m = matcher()
    # Sent at real 1000 ms; kernel stamped it at 1042 ms; handled 90 ms after sending.
    assert m.receive(reply(seq=0), 1042 * MS, 5090 * MS) is Outcome.MATCHED
    assert m.ledgers[T1].delays_ms == {0: 42.0}
    assert m.ledgers[T1].received == 1


@pytest.mark.parametrize(
    "packet",
    [
        reply(src="203.0.113.99"),  # not a target
        reply(dst="100.64.1.3"),  # not our address
        reply(ident=IDENT ^ 1),
        reply(payload=b"\xff" + COOKIE[1:] + b"\x00\x00"),  # wrong cookie
        reply(seq=1, payload=pk.echo_payload(COOKIE, 0)),  # the cookie of another echo
        reply(seq=9),  # never sent
        reply(src=T2, seq=1),  # sent to T1 only
        reply(payload=COOKIE),  # cookie without the sequence number
    ],
    ids=[
        "source",
        "destination",
        "ident",
        "cookie",
        "cookie-seq",
        "unsent",
        "other-target",
        "short",
    ],
)
def test_forged_and_stray_replies_are_ignored_and_counted(packet: bytes) -> None:
    m = matcher()
    assert m.receive(packet, 1010 * MS, 5010 * MS) is Outcome.IGNORED
    assert m.counts[Outcome.IGNORED] == 1
    assert all(ledger.received == 0 for ledger in m.ledgers.values())


def test_a_duplicate_counts_once() -> None:
    m = matcher()
    assert m.receive(reply(seq=1), 1110 * MS, 5110 * MS) is Outcome.MATCHED
    assert m.receive(reply(seq=1), 1111 * MS, 5111 * MS) is Outcome.DUPLICATE
    assert m.ledgers[T1].received == 1
    assert m.ledgers[T1].delays_ms == {1: 10.0}
    assert m.counts[Outcome.DUPLICATE] == 1


def test_a_reply_after_its_echo_expired_stays_a_loss() -> None:
    m = matcher()
    assert m.ledgers[T1].expire(2)
    assert m.receive(reply(seq=2), 1250 * MS, 6250 * MS) is Outcome.LATE
    assert m.ledgers[T1].received == 0
    assert m.ledgers[T1].lost == 1
    assert not m.ledgers[T1].expire(2)  # once


def test_a_reply_stamped_after_the_timeout_is_a_loss_even_before_the_timer() -> None:
    m = matcher(timeout_ms=50)
    assert m.receive(reply(seq=0), 1051 * MS, 5060 * MS) is Outcome.LATE
    assert m.ledgers[T1].lost == 1
    assert not m.ledgers[T1].expire(0)


def test_an_answered_echo_does_not_expire() -> None:
    m = matcher()
    m.receive(reply(seq=0), 1001 * MS, 5001 * MS)
    assert not m.ledgers[T1].expire(0)
    assert m.ledgers[T1].lost == 0
    assert m.ledgers[T1].in_flight == 2


def test_delays_come_in_sequence_order() -> None:
    m = matcher()
    m.receive(reply(seq=2), 1203 * MS, 5203 * MS)
    m.receive(reply(seq=0), 1001 * MS, 5203 * MS)
    assert m.ledgers[T1].ordered_delays() == (1.0, 3.0)


def test_delay_falls_back_to_monotonic_times_when_the_wall_clock_jumps() -> None:
    echo = Echo(real_ns=1000 * MS, mono_ns=5000 * MS)
    assert pk.reply_delay_ms(echo, 1020 * MS, 5030 * MS) == 20.0
    assert pk.reply_delay_ms(echo, 900 * MS, 5030 * MS) == 30.0  # stepped back
    assert pk.reply_delay_ms(echo, 9000 * MS, 5030 * MS) == 30.0  # stepped forward
    assert pk.reply_delay_ms(echo, None, 5030 * MS) == 30.0  # no kernel timestamp


def test_kernel_timestamp_is_read_from_the_control_message() -> None:
    stamp = struct.pack("@ll", 1_700_000_000, 123_456_789)
    ancillary = [(socket.SOL_SOCKET, 35, stamp)]
    assert kernel_time_ns(ancillary) == 1_700_000_000_123_456_789
    assert kernel_time_ns([]) is None
    assert kernel_time_ns([(socket.SOL_SOCKET, 29, stamp)]) is None


# --------------------------------------------------------------------- BPF


def run_bpf(program: tuple[Insn, ...], packet: bytes) -> int:
    """A classic BPF interpreter for the instructions the prober's filters use; an
    out-of-bounds load drops the packet, as in the kernel."""
    a = x = pc = 0
    sizes = {bpf.BPF_W: 4, bpf.BPF_H: 2, bpf.BPF_B: 1}
    for _step in range(4096):
        insn = program[pc]
        cls = insn.code & 0x07
        if cls == bpf.BPF_RET:
            return insn.k
        if cls == bpf.BPF_LDX:
            assert insn.code == bpf.BPF_LDX | bpf.BPF_B | bpf.BPF_MSH
            if insn.k >= len(packet):
                return 0
            x = 4 * (packet[insn.k] & 0x0F)
        elif cls == bpf.BPF_LD:
            size = sizes[insn.code & 0x18]
            mode = insn.code & 0xE0
            assert mode in (bpf.BPF_ABS, bpf.BPF_IND)
            offset = insn.k + (x if mode == bpf.BPF_IND else 0)
            if offset + size > len(packet):
                return 0
            a = int.from_bytes(packet[offset : offset + size], "big")
        elif cls == bpf.BPF_JMP:
            op = insn.code & 0xF0
            taken = a == insn.k if op == bpf.BPF_JEQ else bool(a & insn.k)
            assert op in (bpf.BPF_JEQ, bpf.BPF_JSET)
            pc += insn.jt if taken else insn.jf
        else:
            raise AssertionError(f"unexpected opcode {insn.code:#x}")
        pc += 1
    raise AssertionError("no return")


ECHO_FILTER = pk.echo_reply_filter(LOCAL, IDENT)
ACCEPTED = {
    "reply": reply(),
    "reply-with-options": reply(options=[b"\x01\x01\x01\x00"]),
    # The kernel filter only sees identifier and destination; Python checks the rest.
    "forged-cookie": reply(payload=b"forged"),
    "forged-source": reply(src="198.51.100.99"),
}
REJECTED = {
    "request": bytes(IP(src=LOCAL, dst=T1) / ICMP(type=8, id=IDENT) / COOKIE),
    "other-ident": reply(ident=IDENT + 1),
    "other-destination": reply(dst="100.64.1.3"),
    "unreachable": bytes(IP(src=T1, dst=LOCAL) / ICMP(type=3, code=1) / reply()[:28]),
    "udp": bytes(IP(src=T1, dst=LOCAL) / UDP(sport=IDENT, dport=IDENT) / COOKIE),
    "fragment": bytes(IP(src=T1, dst=LOCAL, frag=100) / ICMP(type=0, id=IDENT) / COOKIE),
    "first-fragment": bytes(IP(src=T1, dst=LOCAL, flags="MF") / ICMP(type=0, id=IDENT)),
    "truncated": reply()[:22],
}


def test_arp_filter_accepts_only_the_gateways_replies() -> None:
    program = pk.arp_reply_filter(GW)
    answer = bytes(ARP(op=2, hwsrc="02:00:00:00:00:09", psrc=GW, pdst=LOCAL))
    assert run_bpf(program, answer) == bpf.ACCEPT_BYTES
    assert run_bpf(program, bytes(ARP(op=2, psrc="100.64.1.9", pdst=LOCAL))) == 0
    assert run_bpf(program, bytes(ARP(op=1, psrc=GW, pdst=LOCAL))) == 0
    assert run_bpf(program, bytes(ARP(op=2, psrc=GW, pdst=LOCAL, ptype=0x86DD))) == 0


def test_the_filters_pack_as_struct_sock_filter() -> None:
    packed = bpf.pack_filter(ECHO_FILTER)
    assert len(packed) == 8 * len(ECHO_FILTER)
    assert struct.unpack_from("=HBBI", packed, 8 * (len(ECHO_FILTER) - 1)) == (0x06, 0, 0, 0)


def kernel_passes(program: tuple[Insn, ...], packets: dict[str, bytes]) -> set[str]:
    """Which ``packets`` the kernel's own BPF lets through to a socket carrying ``program``
    (an AF_UNIX datagram receiver filters each message from its first byte, unprivileged)."""
    receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with receiver, sender:
        attach_filter(receiver, program)
        receiver.setblocking(False)
        passed = set()
        for name, packet in packets.items():
            sender.send(packet)
            with contextlib.suppress(BlockingIOError):
                if receiver.recv(4096) == packet:
                    passed.add(name)
        return passed


def test_the_kernel_accepts_the_arp_filter() -> None:
    answer = bytes(ARP(op=2, psrc=GW, pdst=LOCAL))
    request = bytes(ARP(op=1, psrc=GW, pdst=LOCAL))
    program = pk.arp_reply_filter(GW)
    assert kernel_passes(program, {"reply": answer, "request": request}) == {"reply"}


# --------------------------------------------------------------------- rounds that cannot start


def probe(**changes: object) -> StartProbe:
    fields: dict[str, object] = {
        "uplink": "lo",
        "ifindex": socket.if_nametoindex("lo"),
        "gateway": None,
        "point_to_point": False,
        "source": None,
        "targets": (T1, T2),
        "count": 3,
        "interval_ms": 10,
        "timeout_ms": 100,
        "max_lost": 1,
    }
    fields.update(changes)
    return StartProbe(**fields)  # type: ignore[arg-type]


def test_an_ethernet_uplink_without_gateway_fails_at_once() -> None:
    result = asyncio.run(PacketProber().run_round(probe()))
    assert result.error == "no gateway on lo"
    assert [(t.target, t.sent, t.error) for t in result.targets] == [
        (T1, 0, "no gateway on lo"),
        (T2, 0, "no gateway on lo"),
    ]


def test_a_vanished_uplink_fails_at_once() -> None:
    result = asyncio.run(PacketProber().run_round(probe(uplink="wan9", ifindex=2**31 - 1)))
    assert result.error == f"wan9: no interface #{2**31 - 1}"
    assert all(t.sent == 0 for t in result.targets)


def test_packet_sockets_are_closed_off_the_event_loop() -> None:
    """Releasing a bound packet socket waits for an RCU grace period in the kernel."""
    closed_on: list[int] = []

    class Recorder:
        def close(self) -> None:
            closed_on.append(threading.get_ident())

    async def scenario() -> int:
        close_off_loop(Recorder())  # type: ignore[arg-type]
        for _ in range(200):
            if closed_on:
                break
            await asyncio.sleep(0.005)
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert closed_on
    assert closed_on[0] != loop_thread
    close_off_loop(Recorder())  # type: ignore[arg-type]  # no loop: closed at once, here
    assert closed_on[1] == threading.get_ident()


# --------------------------------------------------------------------- IPv6: building


def test_echo6_request_is_byte_for_byte_what_scapy_builds() -> None:
    ours = pk.echo6_request_packet(LOCAL6, T1_6, IDENT, 7, COOKIE)
    theirs = IPv6(src=LOCAL6, dst=T1_6, hlim=64) / ICMPv6EchoRequest(
        id=IDENT, seq=7, data=COOKIE + b"\x00\x07"
    )
    assert ours == bytes(theirs)
    assert ours[:1] == b"\x60"  # version 6, traffic class and flow label 0
    assert ours[7] == 64  # hop limit


def test_the_icmpv6_checksum_covers_the_pseudo_header() -> None:
    ours = pk.echo6_request_packet(LOCAL6, T1_6, IDENT, 7, COOKIE)
    length = len(ours) - 40
    pseudo = ours[8:40] + struct.pack("!I3xB", length, 58)
    assert pk.checksum(pseudo + ours[40:]) == 0
    # The same message from another source needs another checksum.
    other = pk.echo6_request_packet("2001:db8:1::3", T1_6, IDENT, 7, COOKIE)
    assert other[40:42] == ours[40:42]
    assert other[42:44] != ours[42:44]


@pytest.mark.parametrize("target", [GW6, "fe80::1234:5678:9abc", "2001:db8:1::1"])
def test_neighbor_solicitation_is_what_scapy_builds(target: str) -> None:
    packet, mac = pk.neighbor_solicitation(bytes.fromhex(OUR_MAC.replace(":", "")), LOCAL6, target)
    group = in6_getnsma(socket.inet_pton(socket.AF_INET6, target))
    theirs = IPv6(src=LOCAL6, dst=socket.inet_ntop(socket.AF_INET6, group), hlim=255)
    theirs /= ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr=OUR_MAC)
    assert packet == bytes(theirs)
    assert pk.format_mac(mac) == in6_getnsmac(group)


def test_the_solicited_node_group_keeps_the_low_24_bits() -> None:
    assert pk.solicited_node("fe80::1") == ("ff02::1:ff00:1", bytes.fromhex("3333ff000001"))
    group, mac = pk.solicited_node("2001:db8::aabb:ccdd")
    assert group == "ff02::1:ffbb:ccdd"
    assert mac == bytes.fromhex("3333ffbbccdd")


# --------------------------------------------------------------------- IPv6: parsing


def test_an_echo6_reply_is_parsed() -> None:
    parsed = pk.parse_echo6_reply(reply6(seq=3))
    assert parsed == pk.EchoReply(T1_6, LOCAL6, IDENT, 3, COOKIE + b"\x00\x03")


def test_bytes_beyond_the_ipv6_payload_length_are_not_read() -> None:
    parsed = pk.parse_echo6_reply(reply6(seq=3) + b"\x00" * 6)  # a link's padding
    assert parsed is not None
    assert parsed.payload == COOKIE + b"\x00\x03"


def _echo6(**fields: Any) -> ICMPv6EchoReply:
    return ICMPv6EchoReply(id=IDENT, data=pk.echo_payload(COOKIE, 0), **fields)


NOT_ECHO6_REPLIES = {
    "request": bytes(IPv6(src=T1_6, dst=LOCAL6) / ICMPv6EchoRequest(id=IDENT, data=COOKIE)),
    "code": bytes(IPv6(src=T1_6, dst=LOCAL6) / _echo6(code=1)),
    "udp": bytes(IPv6(src=T1_6, dst=LOCAL6) / UDP() / COOKIE),
    "hop-by-hop": bytes(IPv6(src=T1_6, dst=LOCAL6) / IPv6ExtHdrHopByHop() / _echo6()),
    "not-icmpv6": bytes(IPv6(src=T1_6, dst=LOCAL6, nh=0) / bytes(_echo6())),
    "destination-options": bytes(IPv6(src=T1_6, dst=LOCAL6) / IPv6ExtHdrDestOpt() / _echo6()),
    "fragment": bytes(IPv6(src=T1_6, dst=LOCAL6) / IPv6ExtHdrFragment(m=1) / _echo6()),
    "checksum": bytes(IPv6(src=T1_6, dst=LOCAL6) / _echo6(cksum=0x1111)),
    "truncated": reply6()[:60],
    "payload-length": bytes(IPv6(src=T1_6, dst=LOCAL6, plen=200) / _echo6()),
    "ipv4": reply(),
    "version-4": b"\x40" + reply6()[1:],
    "empty": b"",
}


@pytest.mark.parametrize("name", NOT_ECHO6_REPLIES)
def test_what_is_not_a_valid_echo6_reply(name: str) -> None:
    assert pk.parse_echo6_reply(NOT_ECHO6_REPLIES[name]) is None


def test_a_neighbor_advert_is_parsed() -> None:
    parsed = pk.parse_neighbor_advert(advert())
    assert parsed == pk.NeighborAdvert(GW6, bytes.fromhex("020000000009"))


def test_the_target_address_is_found_among_other_options() -> None:
    na = IPv6(src=GW6, dst=LOCAL6, hlim=255) / ICMPv6ND_NA(tgt=GW6, S=1)
    packet = bytes(na / ICMPv6NDOptMTU(mtu=1400) / ICMPv6NDOptDstLLAddr(lladdr=GW_MAC))
    assert pk.parse_neighbor_advert(packet) == pk.NeighborAdvert(GW6, bytes.fromhex("020000000009"))


NOT_ADVERTS = {
    "no-target-address": bytes(IPv6(src=GW6, dst=LOCAL6, hlim=255) / ICMPv6ND_NA(tgt=GW6)),
    "routed": advert(hlim=64),
    "solicitation": bytes(
        IPv6(src=GW6, dst=LOCAL6, hlim=255)
        / ICMPv6ND_NS(tgt=GW6)
        / ICMPv6NDOptSrcLLAddr(lladdr=GW_MAC)
    ),
    "checksum": bytes(
        IPv6(src=GW6, dst=LOCAL6, hlim=255)
        / ICMPv6ND_NA(tgt=GW6, cksum=0x1111)
        / ICMPv6NDOptDstLLAddr(lladdr=GW_MAC)
    ),
    # RFC 4861 4.6: a zero-length option makes the whole packet invalid (and would
    # never let a parser get past it).
    "zero-length-option": bytes(
        IPv6(src=GW6, dst=LOCAL6, hlim=255)
        / ICMPv6ND_NA(tgt=GW6)
        / (b"\x0e\x00" + bytes(6))
        / ICMPv6NDOptDstLLAddr(lladdr=GW_MAC)
    ),
    "not-icmpv6": bytes(IPv6(src=GW6, dst=LOCAL6, hlim=255, nh=0) / advert()[40:]),
    "long-link-address": bytes(
        IPv6(src=GW6, dst=LOCAL6, hlim=255) / ICMPv6ND_NA(tgt=GW6) / (b"\x02\x02" + bytes(14))
    ),
    "option-past-the-end": bytes(
        IPv6(src=GW6, dst=LOCAL6, hlim=255) / ICMPv6ND_NA(tgt=GW6) / (b"\x02\x02" + bytes(6))
    ),
    "hop-by-hop": bytes(
        IPv6(src=GW6, dst=LOCAL6, hlim=255)
        / IPv6ExtHdrHopByHop()
        / ICMPv6ND_NA(tgt=GW6)
        / ICMPv6NDOptDstLLAddr(lladdr=GW_MAC)
    ),
    "truncated": advert()[:60],
}


@pytest.mark.parametrize("name", NOT_ADVERTS)
def test_what_is_not_a_usable_neighbor_advert(name: str) -> None:
    assert pk.parse_neighbor_advert(NOT_ADVERTS[name]) is None


# --------------------------------------------------------------------- IPv6: matching


def matcher6(targets: tuple[str, ...] = (T1_6, T2_6)) -> RoundMatcher:
    m = RoundMatcher(LOCAL6, IDENT, COOKIE, targets, 1000, packets=pk.IPV6_PACKETS)
    for target in targets:
        for seq in range(3):
            m.sent(target, seq, real_ns=1000 * MS + seq * 100 * MS, mono_ns=5000 * MS)
    return m


def test_an_echo6_request_of_the_matcher_is_the_family_s_packet() -> None:
    m = matcher6()
    assert m.request(T1_6, 2, ip_id=99) == pk.echo6_request_packet(LOCAL6, T1_6, IDENT, 2, COOKIE)


def test_an_echo6_reply_matches_with_its_kernel_delay() -> None:
    m = matcher6()
    assert m.receive(reply6(seq=1), 1107 * MS, 5300 * MS) is Outcome.MATCHED
    assert m.ledgers[T1_6].delays_ms == {1: 7.0}


def test_addresses_are_matched_as_addresses_not_as_text() -> None:
    written = "2001:DB8:FFFF:0:0::10"  # the same target, written otherwise
    m = matcher6(targets=(written,))
    assert m.receive(reply6(seq=0), 1001 * MS, 5001 * MS) is Outcome.MATCHED
    assert m.ledgers[written].received == 1  # reported under the name it was asked by


@pytest.mark.parametrize(
    "packet",
    [
        reply6(src="2001:db8:ffff::99"),
        reply6(dst="2001:db8:1::3"),
        reply6(ident=IDENT ^ 1),
        reply6(payload=b"\xff" + COOKIE[1:] + b"\x00\x00"),
        reply6(seq=1, payload=pk.echo_payload(COOKIE, 0)),
        reply6(seq=9),
        reply6(payload=COOKIE),
        reply(src=T1, dst=LOCAL),  # an IPv4 reply on an IPv6 round
    ],
    ids=["source", "destination", "ident", "cookie", "cookie-seq", "unsent", "short", "ipv4"],
)
def test_forged_and_stray_echo6_replies_are_ignored(packet: bytes) -> None:
    m = matcher6()
    assert m.receive(packet, 1010 * MS, 5010 * MS) is Outcome.IGNORED
    assert all(ledger.received == 0 for ledger in m.ledgers.values())


def test_a_duplicate_echo6_reply_counts_once_and_a_late_one_stays_lost() -> None:
    m = matcher6()
    assert m.receive(reply6(seq=0), 1010 * MS, 5010 * MS) is Outcome.MATCHED
    assert m.receive(reply6(seq=0), 1011 * MS, 5011 * MS) is Outcome.DUPLICATE
    assert m.ledgers[T1_6].expire(1)
    assert m.receive(reply6(seq=1), 2200 * MS, 6200 * MS) is Outcome.LATE
    assert (m.ledgers[T1_6].received, m.ledgers[T1_6].lost) == (1, 1)


# --------------------------------------------------------------------- IPv6: BPF


ECHO6_FILTER = pk.echo6_reply_filter(LOCAL6, IDENT)
ACCEPTED6 = {
    "reply": reply6(),
    "forged-cookie": reply6(payload=b"forged"),
    "forged-source": reply6(src="2001:db8:ffff::99"),
}
REJECTED6 = {
    "request": bytes(IPv6(src=LOCAL6, dst=T1_6) / ICMPv6EchoRequest(id=IDENT, data=COOKIE)),
    "other-ident": reply6(ident=IDENT + 1),
    "other-destination": reply6(dst="2001:db8:1::3"),
    "destination-in-the-last-word": reply6(dst="2001:db8:1::1:2"),
    "unreachable": bytes(IPv6(src=T1_6, dst=LOCAL6) / ICMPv6DestUnreach() / reply6()[:48]),
    "udp": bytes(IPv6(src=T1_6, dst=LOCAL6) / UDP(sport=IDENT, dport=IDENT) / COOKIE),
    "hop-by-hop": bytes(IPv6(src=T1_6, dst=LOCAL6) / IPv6ExtHdrHopByHop() / _echo6()),
    "fragment": bytes(IPv6(src=T1_6, dst=LOCAL6) / IPv6ExtHdrFragment(m=1) / _echo6()),
    # A reply's bytes where an extension header should be: only the next header tells.
    "not-icmpv6": NOT_ECHO6_REPLIES["not-icmpv6"],
    "advert": advert(),
    "truncated": reply6()[:42],
}


ADVERT_FILTER = pk.neighbor_advert_filter(GW6)
ADVERTS_ACCEPTED = {"advert": advert(), "unsolicited": advert(S=0, O=1)}
ADVERTS_REJECTED = {
    "other-target": advert(target="fe80::2"),
    "routed": advert(hlim=64),
    "solicitation": NOT_ADVERTS["solicitation"],
    "hop-by-hop": NOT_ADVERTS["hop-by-hop"],
    "not-icmpv6": NOT_ADVERTS["not-icmpv6"],
    "echo-reply": reply6(src=GW6),
    "truncated": advert()[:60],
}


# --------------------------------------------------------------------- every filter's verdicts

# filter name -> (program, the packets it must let through, those it must keep back)
FILTERS = {
    "echo": (ECHO_FILTER, ACCEPTED, REJECTED),
    "echo6": (ECHO6_FILTER, ACCEPTED6, REJECTED6),
    "advert": (ADVERT_FILTER, ADVERTS_ACCEPTED, ADVERTS_REJECTED),
}
VERDICTS = [
    pytest.param(name, packet, passes, id=f"{name}-{'accepts' if passes else 'rejects'}-{packet}")
    for name, (_program, accepted, rejected) in FILTERS.items()
    for passes, packets in ((True, accepted), (False, rejected))
    for packet in packets
]


@pytest.mark.parametrize(("name", "packet", "passes"), VERDICTS)
def test_filter_verdicts(name: str, packet: str, passes: bool) -> None:
    program, accepted, rejected = FILTERS[name]
    verdict = run_bpf(program, (accepted if passes else rejected)[packet])
    assert verdict == (bpf.ACCEPT_BYTES if passes else 0)


@pytest.mark.parametrize("name", FILTERS)
def test_the_kernel_agrees_with_the_interpreter(name: str) -> None:
    program, accepted, rejected = FILTERS[name]
    assert kernel_passes(program, {**accepted, **rejected}) == set(accepted)


# --------------------------------------------------------------------- IPv6: rounds not sent


def test_an_ipv6_round_without_a_source_is_not_sent() -> None:
    result = asyncio.run(PacketProber().run_round(probe(family=Family.IPV6, gateway=GW6)))
    assert result.error == "no IPv6 address on lo"
    assert all((t.sent, t.error) == (0, "no IPv6 address on lo") for t in result.targets)


def test_an_ipv6_round_from_an_address_the_uplink_does_not_hold_is_not_sent() -> None:
    probe6 = probe(family=Family.IPV6, gateway=GW6, source=LOCAL6, targets=(T1_6,))
    result = asyncio.run(PacketProber().run_round(probe6))
    assert result.error == f"{LOCAL6} is not an address of lo"
    assert result.targets[0].sent == 0


def test_a_target_of_the_other_family_is_refused_before_anything_is_sent() -> None:
    mixed = probe(point_to_point=True, targets=(T1, T1_6))  # IPv4 round, from 127.0.0.1
    result = asyncio.run(PacketProber().run_round(mixed))
    assert result.error == f"{T1_6} is not an IPv4 address"
    assert all(t.sent == 0 for t in result.targets)


def test_the_ipv6_addresses_of_an_interface_are_read_with_their_flags(tmp_path: Path) -> None:
    table = tmp_path / "if_inet6"
    table.write_text(
        "20010db8000100000000000000000002 04 40 00 80     wan1\n"
        "fe800000000000000000000000000001 04 40 20 c0     wan1\n"
        "20010db8000200000000000000000002 05 40 00 48     wan2\n"
    )
    addresses = interface_ipv6("wan1", str(table))
    assert addresses == {
        ipaddress.IPv6Address(LOCAL6): 0x80,  # permanent
        ipaddress.IPv6Address(GW6): 0xC0,  # permanent, tentative
    }
    assert interface_ipv6("wan2", str(table)) == {
        ipaddress.IPv6Address("2001:db8:2::2"): 0x48  # tentative, failed DAD
    }
    assert interface_ipv6("wan1", str(tmp_path / "absent")) == {}
