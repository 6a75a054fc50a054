"""Which interface the kernel sends a packet out of, now: one RTM_GETROUTE (what `ip route
get` asks) on a raw rtnetlink socket, answered from the routing tables as they are,
policy rules included.

That is how the flows adapter tells a flow that a route change broke from one it did not:
when traffic leaves an uplink, a connection from the uplink's address to a peer routed
through the uplink still (a host route, a peer on the uplink's own network, a socket
bound to the device) goes on as before and must be left alone; one whose packets now
leave by another interface, or by none, is the one to end.

Built with `struct` from <linux/rtnetlink.h>, as sock_diag's messages are; blocking
calls, each bounded by TIMEOUT_S, run in the flows adapter's worker thread.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from pingu.adapters.rawnetlink import (
    ATTRIBUTE,
    NLA_TYPE_MASK,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    RawNetlink,
    attribute,
    error_code,
    message,
    messages,
)

NETLINK_ROUTE = 0
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
RTA_DST, RTA_SRC, RTA_OIF = 1, 2, 4
TIMEOUT_S = 2.0
RECEIVE_SIZE = 16 * 1024

_RTMSG = struct.Struct(
    "=BBBBBBBBI"
)  # family, dst_len, src_len, tos, table, proto, scope, type, flags
_U32 = struct.Struct("=I")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def plain(address: str) -> Address:
    """``address`` as the family the kernel routes it in (IPv4-mapped IPv6 is IPv4)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def lookup_request(dst: Address, src: Address | None, oif: int | None, seq: int) -> bytes:
    """RTM_GETROUTE for a packet to ``dst`` (from ``src``, out of ``oif`` when given)."""
    family = socket.AF_INET if dst.version == 4 else socket.AF_INET6
    bits = 32 if dst.version == 4 else 128
    body = _RTMSG.pack(family, bits, bits if src is not None else 0, 0, 0, 0, 0, 0, 0)
    body += attribute(RTA_DST, dst.packed)
    if src is not None:
        body += attribute(RTA_SRC, src.packed)
    if oif:
        body += attribute(RTA_OIF, _U32.pack(oif))
    return message(RTM_GETROUTE, NLM_F_REQUEST, seq, body)


def output_interface(payload: bytes) -> int | None:
    """The RTA_OIF of an RTM_NEWROUTE answer, None if it has none."""
    offset = _RTMSG.size
    while offset + ATTRIBUTE.size <= len(payload):
        length, kind = ATTRIBUTE.unpack_from(payload, offset)
        if length < ATTRIBUTE.size:
            return None
        if kind & NLA_TYPE_MASK == RTA_OIF and length >= ATTRIBUTE.size + _U32.size:
            return int(_U32.unpack_from(payload, offset + ATTRIBUTE.size)[0])
        offset += (length + 3) & ~3
    return None


class RouteLookup(RawNetlink):
    """One rtnetlink socket for lookups; the answers of one pass are kept (the table moves
    on while a pass runs, but what it was at the pass's start is what matters)."""

    def __init__(self) -> None:
        super().__init__(NETLINK_ROUTE, TIMEOUT_S)
        self._known: dict[tuple[Address, Address | None, int | None], int | None] = {}

    def leaves_by(self, dst: str, src: str | None = None, oif: int | None = None) -> int | None:
        """The interface a packet to ``dst`` (from ``src``; bound to ``oif``) leaves by
        now; None when none would take it (no route, or ``src`` is no longer local)."""
        to, of = plain(dst), plain(src) if src is not None else None
        if of is not None and of.version != to.version:
            return None
        key = (to, of, oif or None)
        if key not in self._known:
            self._known[key] = self._ask(to, of, oif or None)
        return self._known[key]

    def _ask(self, dst: Address, src: Address | None, oif: int | None) -> int | None:
        seq = self._next()
        self._sock.send(lookup_request(dst, src, oif, seq))
        while True:
            for kind, got, payload in messages(self._sock.recv(RECEIVE_SIZE)):
                if got != seq:
                    continue
                if kind == RTM_NEWROUTE:
                    return output_interface(payload)
                if kind == NLMSG_ERROR:
                    if error_code(payload) == 0:
                        continue  # an acknowledgement; the answer comes apart
                    # ENETUNREACH, EHOSTUNREACH: no route; EINVAL: src is not ours
                    # (anymore); anything else: no way out that we can tell.
                    return None
