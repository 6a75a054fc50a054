"""The box's own TCP connections from an address, found and destroyed through sock_diag
(NETLINK_SOCK_DIAG): the kernel's mechanism behind `ss -K`.

A dump asks for the connections of one family in the states that carry traffic, with a
bytecode filter run by the kernel (INET_DIAG_BC_S_COND: the local address), so only
matching sockets come back; each is then destroyed by its full identity (addresses,
ports, interface, cookie) with SOCK_DESTROY: its program's next call fails with
ECONNABORTED and a blocking one returns at once. Listening sockets are in no state asked
for. The messages are built with `struct` from <linux/inet_diag.h>: pyroute2's DiagSocket
dumps sockets but has no destroy request, and its request API is marked unstable.

Blocking: the adapter above runs these calls in a worker thread.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass

from pingu.adapters.rawnetlink import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NetlinkError,
    RawNetlink,
    attribute,
    error_code,
    message,
    messages,
)

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
SOCK_DESTROY = 21
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_BC_S_COND = 7

# TCP states (include/net/tcp_states.h) of connections that carry or wait for traffic;
# not LISTEN (10), TIME_WAIT (6, no program holds it), CLOSE (7).
ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING = (
    1,
    2,
    3,
    4,
    5,
    8,
    9,
    11,
)
CONNECTED_STATES = sum(
    1 << s
    for s in (ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING)
)

_REQ = struct.Struct("=BBBxI")  # inet_diag_req_v2, before its sockid
SOCKID = struct.Struct(">HH16s16s")  # sport, dport, src, dst (network order)
_SOCKID_TAIL = struct.Struct("=I8s")  # interface, cookie (host order, kept as bytes)
SOCKID_SIZE = SOCKID.size + _SOCKID_TAIL.size  # 48
_MSG = struct.Struct("=BBBB")  # inet_diag_msg: family, state, timer, retrans
_BC_OP = struct.Struct("=BBH")  # inet_diag_bc_op: code, yes, no
_HOSTCOND = struct.Struct("=BBxxi")  # inet_diag_hostcond: family, prefix_len, port
RECEIVE_SIZE = 64 * 1024
TIMEOUT_S = 2.0


class SockDiagError(NetlinkError):
    """The kernel refused a sock_diag request (the message says which errno)."""


@dataclass(frozen=True)
class Connection:
    """One TCP socket as sock_diag identifies it."""

    family: int
    state: int
    local: str
    local_port: int
    remote: str
    remote_port: int
    sockid: bytes  # the identity SOCK_DESTROY takes, as the dump gave it

    @property
    def interface(self) -> int:
        """The interface the socket is bound to (SO_BINDTODEVICE), 0 when none."""
        if len(self.sockid) < SOCKID_SIZE:
            return 0
        return int(_SOCKID_TAIL.unpack_from(self.sockid, SOCKID.size)[0])

    def describe(self) -> str:
        return f"{self.local}:{self.local_port} -> {self.remote}:{self.remote_port}"


def _address_bytes(address: str) -> tuple[int, bytes]:
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    return family, ip.packed


def source_filter(address: str) -> bytes:
    """Bytecode the kernel runs on each socket: accept when its local address is `address`
    (an IPv4 one also matches IPv4-mapped addresses of IPv6 sockets), else reject."""
    family, packed = _address_bytes(address)
    cond = _HOSTCOND.pack(family, len(packed) * 8, -1) + packed
    length = _BC_OP.size + len(cond)
    # yes: jump to the end (accept); no: beyond it by 4 (reject).
    return _BC_OP.pack(INET_DIAG_BC_S_COND, length, length + 4) + cond


def dump_request(family: int, address: str, seq: int) -> bytes:
    """SOCK_DIAG_BY_FAMILY for the TCP connections of `family` from `address`."""
    body = _REQ.pack(family, socket.IPPROTO_TCP, 0, CONNECTED_STATES) + b"\0" * SOCKID_SIZE
    body += attribute(INET_DIAG_REQ_BYTECODE, source_filter(address))
    return message(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def destroy_request(connection: Connection, seq: int) -> bytes:
    """SOCK_DESTROY for one connection, by the identity its dump gave."""
    body = _REQ.pack(connection.family, socket.IPPROTO_TCP, 0, 1 << connection.state)
    body += connection.sockid
    return message(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def _text(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return socket.inet_ntop(socket.AF_INET6, raw)


def parse_connection(payload: bytes) -> Connection | None:
    """An inet_diag_msg, or None when it is too short to be one."""
    if len(payload) < _MSG.size + SOCKID_SIZE:
        return None
    family, state, _, _ = _MSG.unpack_from(payload)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    sockid = payload[_MSG.size : _MSG.size + SOCKID_SIZE]
    sport, dport, src, dst = SOCKID.unpack_from(sockid)
    return Connection(family, state, _text(family, src), sport, _text(family, dst), dport, sockid)


def local_matches(connection: Connection, address: str) -> bool:
    """The connection's local address is `address` (IPv4-mapped counts as IPv4)."""
    local = ipaddress.ip_address(connection.local)
    if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped is not None:
        local = local.ipv4_mapped
    return local == ipaddress.ip_address(address)


class SockDiag(RawNetlink):
    """One NETLINK_SOCK_DIAG socket; blocking calls, each bounded by TIMEOUT_S."""

    def __init__(self) -> None:
        super().__init__(NETLINK_SOCK_DIAG, TIMEOUT_S)

    def connections(self, address: str) -> list[Connection]:
        """The TCP connections (both socket families, for IPv4-mapped ones) from `address`."""
        family, _ = _address_bytes(address)
        found: list[Connection] = []
        for socket_family in (family, socket.AF_INET6) if family == socket.AF_INET else (family,):
            seq = self._next()
            self._sock.send(dump_request(socket_family, address, seq))
            found += self._read_dump(seq)
        return [c for c in found if local_matches(c, address)]

    def _read_dump(self, seq: int) -> list[Connection]:
        found: list[Connection] = []
        while True:
            data = self._sock.recv(RECEIVE_SIZE)
            for kind, got, payload in messages(data):
                if got != seq:
                    continue
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR:
                    code = error_code(payload)
                    if code:
                        raise SockDiagError("sock_diag dump", code)
                    return found
                if kind == SOCK_DIAG_BY_FAMILY:
                    connection = parse_connection(payload)
                    if connection is not None:
                        found.append(connection)

    def destroy(self, connection: Connection) -> bool:
        """Destroy one connection: True when destroyed, False when already gone."""
        seq = self._next()
        self._sock.send(destroy_request(connection, seq))
        while True:
            for kind, got, payload in messages(self._sock.recv(RECEIVE_SIZE)):
                if got != seq or kind != NLMSG_ERROR:
                    continue
                code = error_code(payload)
                if code == 0:
                    return True
                if code == errno.ENOENT:
                    return False
                raise SockDiagError(f"destroying {connection.describe()}", code)

    def can_destroy(self) -> str | None:
        """None when the kernel destroys sockets (a destroy of no socket says ENOENT),
        else why not (EOPNOTSUPP: a kernel without CONFIG_INET_DIAG_DESTROY)."""
        nobody = Connection(
            socket.AF_INET, ESTABLISHED, "0.0.0.0", 0, "0.0.0.0", 0, bytes(SOCKID_SIZE)
        )
        try:
            self.destroy(nobody)
        except SockDiagError as error:
            return str(error)
        except OSError as error:
            return f"sock_diag: {error}"
        return None
