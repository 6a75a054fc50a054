"""ICMP echo packets for the lab's own ping helper and target responder (IPv4 only)."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
IPPROTO_ICMP = 1

_ICMP_HEADER = struct.Struct("!BBHHH")
_IP_HEADER = struct.Struct("!BBHHHBBH4s4s")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_message(kind: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request or reply (no IP header) with a correct checksum."""
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
    """An ICMP echo request or reply as read from a raw socket."""

    src: str
    dst: str
    kind: int
    ident: int
    seq: int
    payload: bytes


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
