"""The prober's packets, reply matching and BPF filters, without a network (scapy is the
independent oracle for the bytes; the kernel itself runs the filters on a socketpair)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP

from pingu.adapters import bpf
from pingu.adapters import icmp_packets as pk
from pingu.adapters.bpf import Insn, attach_filter
from pingu.adapters.icmp_packets import Echo, Outcome, RoundMatcher
from pingu.adapters.prober import PacketProber, close_off_loop, kernel_time_ns
from pingu.domain.commands import (
    StartProbe,
)

LOCAL, T1, T2, GW = "100.64.1.2", "203.0.113.10", "203.0.113.11", "100.64.1.1"
IDENT, COOKIE = 0x4D2C, bytes(range(16))
MS = 1_000_000


def reply(
    src: str = T1,
    dst: str = LOCAL,
    ident: int = IDENT,
    seq: int = 0,
    payload: bytes | None = None,
    **ip: Any,
) -> bytes:
    data = pk.echo_payload(COOKIE, seq) if payload is None else payload
    return bytes(IP(src=src, dst=dst, **ip) / ICMP(type=0, id=ident, seq=seq) / data)


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


@pytest.mark.parametrize("name", ACCEPTED)
def test_echo_filter_accepts(name: str) -> None:
    assert run_bpf(ECHO_FILTER, ACCEPTED[name]) == bpf.ACCEPT_BYTES


@pytest.mark.parametrize("name", REJECTED)
def test_echo_filter_rejects(name: str) -> None:
    assert run_bpf(ECHO_FILTER, REJECTED[name]) == 0


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


def test_the_kernel_accepts_the_echo_filter_and_agrees_with_the_interpreter() -> None:
    assert kernel_passes(ECHO_FILTER, {**ACCEPTED, **REJECTED}) == set(ACCEPTED)


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
