"""What the hand-built netlink adapters share: the message header and attribute framing of
<linux/netlink.h>, and a blocking socket of one netlink protocol with a bounded timeout.

ctnetlink (conntrack), sock_diag (the box's connections) and route_lookup (RTM_GETROUTE)
build their own request bodies with `struct`; this module is only the envelope: how a
message and an attribute are laid out, how a datagram is cut into messages, how an
error is read, and the socket they are sent on.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from typing import Self

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
ATTRIBUTE = struct.Struct("=HH")  # nlattr / rtattr: length, type
_ERROR = struct.Struct("=i")  # nlmsgerr's error: 0 (an acknowledgement) or -errno


class NetlinkError(Exception):
    """The kernel refused a request (the message says which errno)."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what}: {os.strerror(code)}")
        self.errno = code


def attribute(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    length = ATTRIBUTE.size + len(payload)
    return ATTRIBUTE.pack(length, kind) + payload + b"\0" * (-length % 4)


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """One netlink message: the header, then `body`."""
    return HEADER.pack(HEADER.size + len(body), kind, flags, seq, 0) + body


def sequence_of(request: bytes) -> int:
    """The sequence number a request was sent with."""
    return int(HEADER.unpack_from(request)[3])


def messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, sequence, payload) of each netlink message in `data`; a truncated or
    malformed message ends the datagram."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, _, seq, _ = HEADER.unpack_from(data, offset)
        if length < HEADER.size or offset + length > len(data):
            return
        yield kind, seq, data[offset + HEADER.size : offset + length]
        offset += (length + 3) & ~3


def error_code(payload: bytes, offset: int = 0) -> int:
    """The errno of an NLMSG_ERROR payload (0: an acknowledgement)."""
    return -int(_ERROR.unpack_from(payload, offset)[0])


class RawNetlink:
    """A blocking socket of one netlink protocol, each call bounded by `timeout`."""

    def __init__(self, protocol: int, timeout: float, receive_buffer: int | None = None) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        try:
            if receive_buffer is not None:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            self._sock.settimeout(timeout)
            self._sock.bind((0, 0))
        except OSError:
            self._sock.close()
            raise
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _next(self) -> int:
        self._seq += 1
        return self._seq
