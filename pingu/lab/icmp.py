"""ICMP and ICMPv6 echoes for the lab's own ping helper and target responder, on raw
sockets of either family.

The two families read differently off a raw socket: an IPv4 one hands over the whole IP
packet (addresses from its header), an IPv6 one only the ICMPv6 message (the source comes
with ``recvmsg``, the destination in an ``IPV6_PKTINFO`` control message, and the kernel
has already checked the checksum). :func:`receive_echo` hides that difference.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
IPPROTO_ICMP = 1
ICMP6_FILTER = 1  # <linux/icmpv6.h>, at level IPPROTO_ICMPV6

_ICMP_HEADER = struct.Struct("!BBHHH")
_IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
_IN6_PKTINFO = struct.Struct("@16sI")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_IN6_PKTINFO.size)


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_message(kind: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request or reply (no IP header) with a correct checksum. An ICMPv6
    message needs none: the kernel writes it over every raw ICMPv6 socket's message."""
    header = _ICMP_HEADER.pack(kind, 0, 0, ident, seq)
    csum = checksum(header + payload)
    return _ICMP_HEADER.pack(kind, 0, csum, ident, seq) + payload


def ipv4_packet(src: str, dst: str, payload: bytes, ttl: int = 64) -> bytes:
    """An IPv4 header carrying ICMP ``payload``; the kernel fills in id and checksum."""
    header = _IP_HEADER.pack(
        0x45,
        0,
        _IP_HEADER.size + len(payload),
        0,
        0,
        ttl,
        IPPROTO_ICMP,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header + payload


@dataclass(frozen=True)
class Echo:
    """An ICMP or ICMPv6 echo request or reply as read from a raw socket."""

    src: str
    dst: str
    kind: int
    ident: int
    seq: int
    payload: bytes


def canonical(address: str) -> str:
    """``address`` as this lab writes it everywhere (``2001:db8:1::2``, not ``2001:DB8:1:0::2``)."""
    return str(ipaddress.ip_address(address))


def family_of(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def echo_kinds(family: socket.AddressFamily) -> tuple[int, int]:
    """The (request, reply) ICMP types of ``family``."""
    if family == socket.AF_INET6:
        return ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY
    return ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY


def open_raw_socket(family: socket.AddressFamily, *, only: int) -> socket.socket:
    """A non-blocking raw ICMP socket of ``family``; an ICMPv6 one passes only messages of
    type ``only`` (the others, neighbour discovery above all, stay in the kernel)."""
    if family == socket.AF_INET6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        # struct icmp6_filter: a set bit blocks its type.
        blocked = [0xFFFFFFFF] * 8
        blocked[only >> 5] &= ~(1 << (only & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("@8I", *blocked))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    return sock


def receive_echo(sock: socket.socket) -> Echo | None:
    """Read one message from a raw socket of :func:`open_raw_socket`: the echo it holds,
    or None if it is not one (BlockingIOError when nothing is queued)."""
    if sock.family == socket.AF_INET:
        return parse_ipv4_echo(sock.recv(65536))
    message, ancillary, _flags, source = sock.recvmsg(65536, _ANCILLARY_SIZE)
    destination = ""
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
            destination = canonical(socket.inet_ntop(socket.AF_INET6, data[:16]))
    return parse_icmpv6_echo(message, canonical(source[0]), destination)


def send_echo(sock: socket.socket, echo: Echo) -> None:
    """Send ``echo`` from ``echo.src`` to ``echo.dst``: an IPv4 one on an IPPROTO_RAW
    socket (header included), an IPv6 one on a raw ICMPv6 socket, its source chosen with
    ``IPV6_PKTINFO``."""
    message = echo_message(echo.kind, echo.ident, echo.seq, echo.payload)
    if sock.family == socket.AF_INET:
        sock.sendto(ipv4_packet(echo.src, echo.dst, message), (echo.dst, 0))
        return
    pktinfo = _IN6_PKTINFO.pack(socket.inet_pton(socket.AF_INET6, echo.src), 0)
    sock.sendmsg([message], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pktinfo)], 0, (echo.dst, 0))


def parse_icmpv6_echo(message: bytes, src: str, dst: str) -> Echo | None:
    """The echo in an ICMPv6 message (no IP header) from ``src`` to ``dst``, or None."""
    if len(message) < _ICMP_HEADER.size:
        return None
    kind, code, _csum, ident, seq = _ICMP_HEADER.unpack_from(message)
    if kind not in (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY) or code != 0:
        return None
    return Echo(src, dst, kind, ident, seq, bytes(message[_ICMP_HEADER.size :]))


def parse_ipv4_echo(packet: bytes) -> Echo | None:
    """The echo in an IPv4 packet read from a raw ICMP socket, or None if it is not one.

    An echo whose ICMP checksum is wrong counts as "not one": a host would drop it too.
    """
    if len(packet) < _IP_HEADER.size:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if packet[0] >> 4 != 4 or packet[9] != IPPROTO_ICMP or len(packet) < ihl + _ICMP_HEADER.size:
        return None
    kind, code, _csum, ident, seq = _ICMP_HEADER.unpack_from(packet, ihl)
    if kind not in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY) or code != 0:
        return None
    total = struct.unpack_from("!H", packet, 2)[0]
    end = min(len(packet), total) if total >= ihl + _ICMP_HEADER.size else len(packet)
    if checksum(bytes(packet[ihl:end])) != 0:
        return None
    return Echo(
        src=socket.inet_ntoa(packet[12:16]),
        dst=socket.inet_ntoa(packet[16:20]),
        kind=kind,
        ident=ident,
        seq=seq,
        payload=bytes(packet[ihl + _ICMP_HEADER.size : end]),
    )
