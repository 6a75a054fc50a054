"""The prober's packets as plain bytes: ICMP echoes, ARP, the reply matching of a round and
the classic BPF programs that keep every other packet in the kernel. No sockets, no I/O.

Built with ``struct`` rather than scapy: importing ``scapy.layers.inet`` alone costs the
daemon about 150 ms of start-up and 30 MB of RSS, for a dozen fixed header fields.
"""

from __future__ import annotations

import enum
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from pingu.adapters.bpf import ACCEPT_BYTES, Insn, assemble

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ARPHRD_ETHER = 1
ARP_REQUEST = 1
ARP_REPLY = 2
IPPROTO_ICMP = 1
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
COOKIE_SIZE = 16
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6

_IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
_ICMP_HEADER = struct.Struct("!BBHHH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_SEQ = struct.Struct("!H")
_IP_FRAGMENT_BITS = 0x3FFF  # "more fragments" and the offset: reassembly is the IP stack's job


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(int(word) for word in struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_payload(cookie: bytes, seq: int) -> bytes:
    """What echo ``seq`` of a round carries, and its reply must carry back."""
    return cookie + _SEQ.pack(seq)


def icmp_echo(kind: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request or reply (no IP header) with its checksum."""
    header = _ICMP_HEADER.pack(kind, 0, 0, ident, seq)
    return _ICMP_HEADER.pack(kind, 0, checksum(header + payload), ident, seq) + payload


def ipv4_packet(src: str, dst: str, payload: bytes, *, ip_id: int, ttl: int = 64) -> bytes:
    """An IPv4 packet carrying ICMP ``payload``, header checksum included (a packet socket
    sends it as is: no IP stack fills anything in)."""
    fields = [0x45, 0, _IP_HEADER.size + len(payload), ip_id, 0, ttl, IPPROTO_ICMP, 0]
    addresses = [socket.inet_aton(src), socket.inet_aton(dst)]
    header = _IP_HEADER.pack(*fields, *addresses)
    fields[-1] = checksum(header)
    return _IP_HEADER.pack(*fields, *addresses) + payload


def echo_request_packet(
    src: str, dst: str, ident: int, seq: int, cookie: bytes, *, ip_id: int
) -> bytes:
    """Echo ``seq`` of a round as an IPv4 packet."""
    echo = icmp_echo(ICMP_ECHO_REQUEST, ident, seq, echo_payload(cookie, seq))
    return ipv4_packet(src, dst, echo, ip_id=ip_id)


@dataclass(frozen=True)
class EchoReply:
    """An ICMP echo reply read off the wire, checksums verified."""

    src: str
    dst: str
    ident: int
    seq: int
    payload: bytes


def parse_echo_reply(packet: bytes) -> EchoReply | None:
    """The echo reply in an IPv4 packet (from its first byte), or None if it is not one
    or either checksum is wrong."""
    if len(packet) < _IP_HEADER.size or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    total = _SEQ.unpack_from(packet, 2)[0]
    if ihl < _IP_HEADER.size or total < ihl + _ICMP_HEADER.size or len(packet) < total:
        return None
    if packet[9] != IPPROTO_ICMP or _SEQ.unpack_from(packet, 6)[0] & _IP_FRAGMENT_BITS:
        return None  # not ICMP, or a fragment
    if checksum(packet[:ihl]) != 0 or checksum(packet[ihl:total]) != 0:
        return None
    kind, code, _csum, ident, seq = _ICMP_HEADER.unpack_from(packet, ihl)
    if kind != ICMP_ECHO_REPLY or code != 0:
        return None
    return EchoReply(
        src=socket.inet_ntoa(packet[12:16]),
        dst=socket.inet_ntoa(packet[16:20]),
        ident=ident,
        seq=seq,
        payload=bytes(packet[ihl + _ICMP_HEADER.size : total]),
    )


# --------------------------------------------------------------------- ARP


def arp_request(sender_mac: bytes, sender_ip: str, target_ip: str) -> bytes:
    """Who has ``target_ip``? Tell ``sender_ip`` (an ARP payload, no Ethernet header)."""
    return _ARP.pack(
        ARPHRD_ETHER,
        ETH_P_IP,
        6,
        4,
        ARP_REQUEST,
        sender_mac,
        socket.inet_aton(sender_ip),
        ZERO_MAC,
        socket.inet_aton(target_ip),
    )


@dataclass(frozen=True)
class ArpReply:
    """``sender_ip`` is at ``sender_mac`` (told to ``target_ip``)."""

    sender_ip: str
    sender_mac: bytes
    target_ip: str


def parse_arp_reply(packet: bytes) -> ArpReply | None:
    """The Ethernet/IPv4 ARP reply in ``packet`` (no Ethernet header), or None."""
    if len(packet) < _ARP.size:
        return None
    htype, ptype, hlen, plen, op, sha, spa, _tha, tpa = _ARP.unpack_from(packet)
    if (htype, ptype, hlen, plen, op) != (ARPHRD_ETHER, ETH_P_IP, 6, 4, ARP_REPLY):
        return None
    return ArpReply(socket.inet_ntoa(spa), sha, socket.inet_ntoa(tpa))


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


# --------------------------------------------------------------------- reply matching


class Outcome(enum.Enum):
    """What one received packet meant to its round."""

    MATCHED = "matched"
    DUPLICATE = "duplicate"  # the echo was already answered: counts once
    LATE = "late"  # the echo had already timed out: it stays lost
    IGNORED = "ignored"  # not an answer to any echo of this round


@dataclass
class Echo:
    """An echo sent: its clocks at the moment of sending, in nanoseconds."""

    real_ns: int  # CLOCK_REALTIME, the clock of the kernel's receive timestamps
    mono_ns: int  # CLOCK_MONOTONIC, immune to clock steps


@dataclass
class TargetLedger:
    """The echoes of one round to one target, and what became of each."""

    target: str
    sent: dict[int, Echo] = field(default_factory=dict)
    delays_ms: dict[int, float] = field(default_factory=dict)
    expired: set[int] = field(default_factory=set)

    @property
    def received(self) -> int:
        return len(self.delays_ms)

    @property
    def lost(self) -> int:
        """Echoes whose wait is over without a reply (those in flight are not lost yet)."""
        return len(self.expired)

    @property
    def in_flight(self) -> int:
        return len(self.sent) - len(self.delays_ms) - len(self.expired)

    def expire(self, seq: int) -> bool:
        """The wait for echo ``seq`` is over; True when that made it a loss."""
        if seq in self.delays_ms or seq in self.expired or seq not in self.sent:
            return False
        self.expired.add(seq)
        return True

    def ordered_delays(self) -> tuple[float, ...]:
        return tuple(self.delays_ms[seq] for seq in sorted(self.delays_ms))


class RoundMatcher:
    """Decides which received packets answer this round's echoes.

    A reply counts only if it comes from a target, to our address, with the round's
    identifier, the sequence number of an echo sent to that target and the round's
    cookie followed by that sequence number, within the timeout.
    """

    def __init__(
        self, local: str, ident: int, cookie: bytes, targets: Iterable[str], timeout_ms: float
    ) -> None:
        self.local = local
        self.ident = ident
        self.cookie = cookie
        self.timeout_ms = timeout_ms
        self.ledgers: dict[str, TargetLedger] = {t: TargetLedger(t) for t in targets}
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)

    def request(self, target: str, seq: int, *, ip_id: int) -> bytes:
        """Echo ``seq`` to ``target``, as an IPv4 packet."""
        return echo_request_packet(self.local, target, self.ident, seq, self.cookie, ip_id=ip_id)

    def sent(self, target: str, seq: int, real_ns: int, mono_ns: int) -> None:
        self.ledgers[target].sent[seq] = Echo(real_ns, mono_ns)

    def receive(self, packet: bytes, kernel_real_ns: int | None, mono_ns: int) -> Outcome:
        """Account for one packet received at ``kernel_real_ns`` (the kernel's timestamp,
        None if there was none) and handled at ``mono_ns``."""
        reply = self._reply_of_round(packet)
        if reply is None:
            outcome = Outcome.IGNORED
        else:
            outcome = self._answer(self.ledgers[reply.src], reply.seq, kernel_real_ns, mono_ns)
        self.counts[outcome] += 1
        return outcome

    def _reply_of_round(self, packet: bytes) -> EchoReply | None:
        reply = parse_echo_reply(packet)
        if reply is None or reply.dst != self.local or reply.ident != self.ident:
            return None
        ledger = self.ledgers.get(reply.src)
        if ledger is None or reply.seq not in ledger.sent:
            return None
        if reply.payload != echo_payload(self.cookie, reply.seq):
            return None
        return reply

    def _answer(
        self, ledger: TargetLedger, seq: int, kernel_real_ns: int | None, mono_ns: int
    ) -> Outcome:
        if seq in ledger.delays_ms:
            return Outcome.DUPLICATE
        if seq in ledger.expired:
            return Outcome.LATE
        delay_ms = reply_delay_ms(ledger.sent[seq], kernel_real_ns, mono_ns)
        if delay_ms > self.timeout_ms:
            ledger.expired.add(seq)
            return Outcome.LATE
        ledger.delays_ms[seq] = delay_ms
        return Outcome.MATCHED


def reply_delay_ms(echo: Echo, kernel_real_ns: int | None, mono_ns: int) -> float:
    """The round-trip time of ``echo``: the kernel's receive timestamp minus the send time.

    The monotonic time at which the reply was handled bounds it from above; a kernel delay
    outside ``0..bound`` means the wall clock was stepped meanwhile, and the bound (which
    includes the event loop's lag) is the best measure left.
    """
    bound_ns = mono_ns - echo.mono_ns
    if kernel_real_ns is None:
        return bound_ns / 1e6
    delay_ns = kernel_real_ns - echo.real_ns
    if not 0 <= delay_ns <= bound_ns:
        return max(bound_ns, 0) / 1e6
    return delay_ns / 1e6


# --------------------------------------------------------------------- kernel-side filters


def _address(text: str) -> int:
    value: int = struct.unpack("!I", socket.inet_aton(text))[0]
    return value


def echo_reply_filter(local: str, ident: int) -> tuple[Insn, ...]:
    """Accept only IPv4 ICMP echo replies (type 0, code 0) to ``local`` with identifier
    ``ident``, unfragmented; for a packet socket whose data starts at the IP header
    (SOCK_DGRAM)."""
    return assemble(
        [
            ("ld", 4, 16),  # destination address
            ("jeq", _address(local), "dst_ok", "drop"),
            ("label", "dst_ok"),
            ("ld", 1, 9),  # protocol
            ("jeq", IPPROTO_ICMP, "icmp", "drop"),
            ("label", "icmp"),
            ("ld", 2, 6),  # flags and fragment offset
            ("jset", _IP_FRAGMENT_BITS, "drop", "whole"),
            ("label", "whole"),
            ("ldx_ihl",),  # X = 4 * (IHL of byte 0)
            ("ldi", 2, 0),  # ICMP type and code
            ("jeq", ICMP_ECHO_REPLY << 8, "reply", "drop"),
            ("label", "reply"),
            ("ldi", 2, 4),  # ICMP identifier
            ("jeq", ident, "accept", "drop"),
            ("label", "accept"),
            ("ret", ACCEPT_BYTES),
            ("label", "drop"),
            ("ret", 0),
        ]
    )


def arp_reply_filter(sender_ip: str) -> tuple[Insn, ...]:
    """Accept only Ethernet/IPv4 ARP replies from ``sender_ip``; for a SOCK_DGRAM packet
    socket (data starts at the ARP header)."""
    return assemble(
        [
            ("ld", 2, 0),  # hardware type
            ("jeq", ARPHRD_ETHER, "ether", "drop"),
            ("label", "ether"),
            ("ld", 2, 2),  # protocol type
            ("jeq", ETH_P_IP, "ipv4", "drop"),
            ("label", "ipv4"),
            ("ld", 2, 6),  # operation
            ("jeq", ARP_REPLY, "reply", "drop"),
            ("label", "reply"),
            ("ld", 4, 14),  # sender protocol address
            ("jeq", _address(sender_ip), "accept", "drop"),
            ("label", "accept"),
            ("ret", ACCEPT_BYTES),
            ("label", "drop"),
            ("ret", 0),
        ]
    )
