"""The prober's packets as plain bytes: ICMP and ICMPv6 echoes, ARP and IPv6 neighbour
discovery, the reply matching of a round and the classic BPF programs that keep every other
packet in the kernel. No sockets, no I/O.

Built with ``struct`` rather than scapy: importing ``scapy.layers.inet`` alone costs the
daemon about 150 ms of start-up and 30 MB of RSS, for a dozen fixed header fields.

What differs between the families is gathered in one :class:`FamilyPackets` each
(:data:`IPV4_PACKETS`, :data:`IPV6_PACKETS`): how an echo is written, read and filtered, and
how the gateway's MAC is asked for (ARP, or an ICMPv6 neighbour solicitation). The round,
its matching and its accounting are the same code for both.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pingu.adapters.bpf import ACCEPT_BYTES, Insn, assemble

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARPHRD_ETHER = 1
ARP_REQUEST = 1
ARP_REPLY = 2
IPPROTO_ICMP = 1
IPPROTO_ICMPV6 = 58
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
ND_NEIGHBOR_SOLICIT = 135
ND_NEIGHBOR_ADVERT = 136
ND_OPT_SOURCE_LINKADDR = 1
ND_OPT_TARGET_LINKADDR = 2
ND_HOP_LIMIT = 255  # RFC 4861: anything else did not come from the link itself
COOKIE_SIZE = 16
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6

_IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
_IPV6_HEADER = struct.Struct("!IHBB16s16s")  # version/class/flow, payload length, next, hops
_ICMP_HEADER = struct.Struct("!BBHHH")
_ICMP_TYPE = struct.Struct("!BBH")  # type, code, checksum: what every ICMP message starts with
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_SEQ = struct.Struct("!H")
_ECHO = struct.Struct("!HH")  # identifier, sequence number
_IP_FRAGMENT_BITS = 0x3FFF  # "more fragments" and the offset: reassembly is the IP stack's job
_ND_TARGET = 8  # offset of the target address in a neighbour solicitation or advertisement


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


def icmp_message(kind: int, body: bytes, pseudo_header: bytes = b"") -> bytes:
    """An ICMP message of type ``kind`` (code 0) carrying ``body``, with its checksum;
    ICMPv6 sums the IPv6 ``pseudo_header`` with it (RFC 8200 8.1), ICMP nothing."""
    unsummed = _ICMP_TYPE.pack(kind, 0, 0) + body
    return _ICMP_TYPE.pack(kind, 0, checksum(pseudo_header + unsummed)) + body


def icmp_echo(kind: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request or reply (no IP header) with its checksum."""
    return icmp_message(kind, _ECHO.pack(ident, seq) + payload)


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
    source, destination = socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])
    return _echo_reply(ICMP_ECHO_REPLY, bytes(packet[ihl:total]), source, destination)


def _echo_reply(kind: int, message: bytes, src: str, dst: str) -> EchoReply | None:
    """The echo reply (of type ``kind``, code 0) that ICMP ``message`` is, or None."""
    if len(message) < _ICMP_HEADER.size:
        return None
    reply_kind, code, _csum, ident, seq = _ICMP_HEADER.unpack_from(message)
    if reply_kind != kind or code != 0:
        return None
    return EchoReply(src, dst, ident, seq, message[_ICMP_HEADER.size :])


# --------------------------------------------------------------------- IPv6


def _in6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def _text6(packed: bytes) -> str:
    return str(ipaddress.IPv6Address(packed))


def _pseudo_header(src: bytes, dst: bytes, length: int) -> bytes:
    """What an ICMPv6 checksum covers besides the message (RFC 8200 8.1)."""
    return src + dst + struct.pack("!I3xB", length, IPPROTO_ICMPV6)


def ipv6_packet(src: str, dst: str, kind: int, body: bytes, *, hop_limit: int = 64) -> bytes:
    """An IPv6 packet carrying the ICMPv6 message of type ``kind`` with ``body``, its
    checksum over the pseudo-header included (nothing fills it in on a packet socket)."""
    source, destination = _in6(src), _in6(dst)
    pseudo_header = _pseudo_header(source, destination, _ICMP_TYPE.size + len(body))
    message = icmp_message(kind, body, pseudo_header)
    fields = (6 << 28, len(message), IPPROTO_ICMPV6, hop_limit, source, destination)
    return _IPV6_HEADER.pack(*fields) + message


def echo6_request_packet(
    src: str, dst: str, ident: int, seq: int, cookie: bytes, *, ip_id: int = 0
) -> bytes:
    """Echo ``seq`` of a round as an IPv6 packet. ``ip_id`` is not used: IPv6 has no
    identification field outside a fragment header (it is here to match IPv4's)."""
    body = _ECHO.pack(ident, seq) + echo_payload(cookie, seq)
    return ipv6_packet(src, dst, ICMPV6_ECHO_REQUEST, body)


def _icmpv6_message(packet: bytes) -> tuple[bytes, bytes, int, bytes] | None:
    """(source, destination, hop limit, ICMPv6 message) of an IPv6 packet (from its first
    byte) whose next header is ICMPv6 itself, with a valid checksum; else None. An
    extension header (a fragment's above all) is refused, not walked: the filters refuse
    it too, and neither replies nor advertisements carry one."""
    if len(packet) < _IPV6_HEADER.size or packet[0] >> 4 != 6:
        return None
    _first, length, next_header, hop_limit, src, dst = _IPV6_HEADER.unpack_from(packet)
    end = _IPV6_HEADER.size + length
    if next_header != IPPROTO_ICMPV6 or length < _ICMP_TYPE.size or len(packet) < end:
        return None
    message = bytes(packet[_IPV6_HEADER.size : end])
    if checksum(_pseudo_header(src, dst, length) + message) != 0:
        return None
    return src, dst, hop_limit, message


def parse_echo6_reply(packet: bytes) -> EchoReply | None:
    """The ICMPv6 echo reply in an IPv6 packet (from its first byte), or None if it is
    not one, the checksum is wrong or an extension header comes first."""
    parts = _icmpv6_message(packet)
    if parts is None:
        return None
    src, dst, _hop_limit, message = parts
    return _echo_reply(ICMPV6_ECHO_REPLY, message, _text6(src), _text6(dst))


def solicited_node(address: str) -> tuple[str, bytes]:
    """The solicited-node multicast group of ``address`` (ff02::1:ffXX:XXXX, its low 24
    bits) and the Ethernet address that group is sent to (33:33 and its low 32 bits)."""
    group = _in6("ff02::1:ff00:0")[:13] + _in6(address)[13:]
    return _text6(group), b"\x33\x33" + group[12:]


def neighbor_solicitation(sender_mac: bytes, sender_ip: str, target_ip: str) -> tuple[bytes, bytes]:
    """Who has ``target_ip``? Tell ``sender_ip`` at ``sender_mac`` (RFC 4861 4.3): the
    IPv6 packet, to the target's solicited-node group, and the MAC it goes to."""
    group, group_mac = solicited_node(target_ip)
    option = bytes([ND_OPT_SOURCE_LINKADDR, 1]) + sender_mac
    body = bytes(4) + _in6(target_ip) + option
    return ipv6_packet(
        sender_ip, group, ND_NEIGHBOR_SOLICIT, body, hop_limit=ND_HOP_LIMIT
    ), group_mac


@dataclass(frozen=True)
class NeighborAdvert:
    """``target`` is at ``mac`` (its target link-layer address option)."""

    target: str
    mac: bytes


def parse_neighbor_advert(packet: bytes) -> NeighborAdvert | None:
    """The neighbour advertisement in an IPv6 packet (from its first byte), or None if it
    is not a valid one (RFC 4861 7.1.2: hop limit 255, code 0, checksum) or carries no
    target link-layer address."""
    parts = _icmpv6_message(packet)
    if parts is None:
        return None
    _src, _dst, hop_limit, message = parts
    options = _ND_TARGET + 16
    if (
        hop_limit != ND_HOP_LIMIT
        or len(message) < options
        or message[:2] != bytes([ND_NEIGHBOR_ADVERT, 0])
    ):
        return None
    mac = _link_address(message[options:], ND_OPT_TARGET_LINKADDR)
    if mac is None:
        return None
    return NeighborAdvert(_text6(message[_ND_TARGET:options]), mac)


def _link_address(options: bytes, kind: int) -> bytes | None:
    """The Ethernet address in the first neighbour discovery option of type ``kind``
    (RFC 4861 4.6.1), or None (also when the options are malformed)."""
    offset = 0
    while offset + 2 <= len(options):
        option, units = options[offset], options[offset + 1]
        end = offset + 8 * units
        if units == 0 or end > len(options):
            return None
        if option == kind:
            return options[offset + 2 : offset + 8] if units == 1 else None
        offset = end
    return None


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
    cookie followed by that sequence number, within the timeout. Addresses are compared
    as addresses, not as text (``2001:DB8::10`` is ``2001:db8::10``).
    """

    def __init__(
        self,
        local: str,
        ident: int,
        cookie: bytes,
        targets: Iterable[str],
        timeout_ms: float,
        *,
        packets: FamilyPackets | None = None,
    ) -> None:
        self.local = local
        self.ident = ident
        self.cookie = cookie
        self.timeout_ms = timeout_ms
        self.packets = packets or IPV4_PACKETS
        self.ledgers: dict[str, TargetLedger] = {t: TargetLedger(t) for t in targets}
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self._local = ipaddress.ip_address(local)
        self._by_address = {ipaddress.ip_address(t): ledger for t, ledger in self.ledgers.items()}

    def request(self, target: str, seq: int, *, ip_id: int) -> bytes:
        """Echo ``seq`` to ``target``, as a packet of the round's family."""
        return self.packets.echo_request(
            self.local, target, self.ident, seq, self.cookie, ip_id=ip_id
        )

    def sent(self, target: str, seq: int, real_ns: int, mono_ns: int) -> None:
        self.ledgers[target].sent[seq] = Echo(real_ns, mono_ns)

    def receive(self, packet: bytes, kernel_real_ns: int | None, mono_ns: int) -> Outcome:
        """Account for one packet received at ``kernel_real_ns`` (the kernel's timestamp,
        None if there was none) and handled at ``mono_ns``."""
        answered = self._answered(packet)
        if answered is None:
            outcome = Outcome.IGNORED
        else:
            ledger, seq = answered
            outcome = self._answer(ledger, seq, kernel_real_ns, mono_ns)
        self.counts[outcome] += 1
        return outcome

    def _answered(self, packet: bytes) -> tuple[TargetLedger, int] | None:
        """The target and echo ``packet`` answers, if it is a reply of this round."""
        reply = self.packets.parse_echo_reply(packet)
        if reply is None or reply.ident != self.ident:
            return None
        if ipaddress.ip_address(reply.dst) != self._local:
            return None
        ledger = self._by_address.get(ipaddress.ip_address(reply.src))
        if ledger is None or reply.seq not in ledger.sent:
            return None
        if reply.payload != echo_payload(self.cookie, reply.seq):
            return None
        return ledger, reply.seq

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


_VERDICTS: Sequence[tuple[object, ...]] = (
    ("label", "accept"),
    ("ret", ACCEPT_BYTES),
    ("label", "drop"),
    ("ret", 0),
)


def _is_ipv6_address(offset: int, address: str, then: str) -> list[tuple[object, ...]]:
    """Steps that go on to ``then`` when the 16 bytes at ``offset`` are ``address``, and
    drop the packet otherwise (classic BPF loads 32 bits at most)."""
    words = struct.unpack("!4I", _in6(address))
    steps: list[tuple[object, ...]] = []
    for i, word in enumerate(words):
        match = then if i == len(words) - 1 else f"{then}/{i}"
        steps += [("ld", 4, offset + 4 * i), ("jeq", word, match, "drop")]
        if match != then:
            steps.append(("label", match))
    return steps


def echo6_reply_filter(local: str, ident: int) -> tuple[Insn, ...]:
    """Accept only ICMPv6 echo replies (type 129, code 0) to ``local`` with identifier
    ``ident``, the ICMPv6 header right after the IPv6 one (no extension header, hence no
    fragment); for a packet socket whose data starts at the IPv6 header (SOCK_DGRAM)."""
    return assemble(
        [
            ("ld", 1, 6),  # next header
            ("jeq", IPPROTO_ICMPV6, "icmpv6", "drop"),
            ("label", "icmpv6"),
            *_is_ipv6_address(24, local, "ours"),  # destination address
            ("label", "ours"),
            ("ld", 2, 40),  # ICMPv6 type and code
            ("jeq", ICMPV6_ECHO_REPLY << 8, "reply", "drop"),
            ("label", "reply"),
            ("ld", 2, 44),  # ICMPv6 identifier
            ("jeq", ident, "accept", "drop"),
            *_VERDICTS,
        ]
    )


def neighbor_advert_filter(target: str) -> tuple[Insn, ...]:
    """Accept only neighbour advertisements (type 136, code 0, hop limit 255, no extension
    header) for ``target``; for a SOCK_DGRAM packet socket (data starts at the IPv6 header)."""
    return assemble(
        [
            ("ld", 1, 6),  # next header
            ("jeq", IPPROTO_ICMPV6, "icmpv6", "drop"),
            ("label", "icmpv6"),
            ("ld", 1, 7),  # hop limit: 255, or it was routed here
            ("jeq", ND_HOP_LIMIT, "on_link", "drop"),
            ("label", "on_link"),
            ("ld", 2, 40),  # ICMPv6 type and code
            ("jeq", ND_NEIGHBOR_ADVERT << 8, "advert", "drop"),
            ("label", "advert"),
            *_is_ipv6_address(40 + _ND_TARGET, target, "accept"),
            *_VERDICTS,
        ]
    )


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


# --------------------------------------------------------------------- the two families


class EchoBuilder(Protocol):
    def __call__(
        self, src: str, dst: str, ident: int, seq: int, cookie: bytes, *, ip_id: int
    ) -> bytes: ...


@dataclass(frozen=True)
class FamilyPackets:
    """What a round on one address family sends, reads and lets through the kernel."""

    name: str  # "IPv4", "IPv6": as reasons say it
    address_family: socket.AddressFamily
    ethertype: int  # of the echoes and their replies
    echo_request: EchoBuilder
    parse_echo_reply: Callable[[bytes], EchoReply | None]
    echo_reply_filter: Callable[[str, int], tuple[Insn, ...]]
    resolution: str  # how the gateway's MAC is asked for: "ARP", "NDP"
    neighbour_ethertype: int
    # (our MAC, our address, the gateway) -> (the question, the MAC it is sent to)
    neighbour_request: Callable[[bytes, str, str], tuple[bytes, bytes]]
    # a packet -> (the address it answers for, that address's MAC), or None
    neighbour_answer: Callable[[bytes], tuple[str, bytes] | None]
    neighbour_filter: Callable[[str], tuple[Insn, ...]]


def _arp_question(own_mac: bytes, source: str, gateway: str) -> tuple[bytes, bytes]:
    return arp_request(own_mac, source, gateway), BROADCAST_MAC


def _arp_answer(packet: bytes) -> tuple[str, bytes] | None:
    reply = parse_arp_reply(packet)
    return None if reply is None else (reply.sender_ip, reply.sender_mac)


def _nd_answer(packet: bytes) -> tuple[str, bytes] | None:
    advert = parse_neighbor_advert(packet)
    return None if advert is None else (advert.target, advert.mac)


IPV4_PACKETS = FamilyPackets(
    name="IPv4",
    address_family=socket.AF_INET,
    ethertype=ETH_P_IP,
    echo_request=echo_request_packet,
    parse_echo_reply=parse_echo_reply,
    echo_reply_filter=echo_reply_filter,
    resolution="ARP",
    neighbour_ethertype=ETH_P_ARP,
    neighbour_request=_arp_question,
    neighbour_answer=_arp_answer,
    neighbour_filter=arp_reply_filter,
)
IPV6_PACKETS = FamilyPackets(
    name="IPv6",
    address_family=socket.AF_INET6,
    ethertype=ETH_P_IPV6,
    echo_request=echo6_request_packet,
    parse_echo_reply=parse_echo6_reply,
    echo_reply_filter=echo6_reply_filter,
    resolution="NDP",
    neighbour_ethertype=ETH_P_IPV6,
    neighbour_request=neighbor_solicitation,
    neighbour_answer=_nd_answer,
    neighbour_filter=neighbor_advert_filter,
)
