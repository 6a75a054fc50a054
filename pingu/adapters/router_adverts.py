"""The IPv6 router advertisements arriving on the box's links, heard on a raw ICMPv6 socket.

The kernel turns an advertisement into a default route (`proto ra`), which pingu captures
and deletes like any other; the kernel adds it back at the next advertisement, which
pingu takes as a renewal. What the table never shows is a router withdrawing itself
(router lifetime 0) while its route is gone: the kernel has nothing to delete and says
nothing. So pingu listens to the advertisements themselves, as radvdump and rdisc6 do:
the kernel passes this socket nothing but router advertisements (ICMP6_FILTER), with
their checksum checked; here each is checked again as RFC 4861 section 6.1.2 asks of a
host (hop limit 255, a link-local source, code 0, at least 16 bytes) and reduced to who
offers itself on which link for how long. A flood is bounded by the kernel's socket
buffer: what does not fit is dropped there, and the next advertisement says it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import sys
from collections.abc import AsyncIterator

from pingu.domain.events import RouterAdvertised

log = logging.getLogger("pingu")

ICMP6_FILTER = 1  # <netinet/icmp6.h>: the socket option of the type filter
ROUTER_ADVERT = 134
RA_MIN_LENGTH = 16  # type, code, checksum, hop limit, flags, lifetime, reachable, retrans
HOP_LIMIT = 255
RECEIVE_BUFFER = 64 * 1024
DATAGRAM_MAX = 2048  # an advertisement's header is all pingu reads; options are cut off
ANCILLARY = socket.CMSG_SPACE(4)
RESTART_S = 5.0
RATE_PER_S = 20.0  # advertisements passed on per second, at most (routers send one per
BURST = 100  # few seconds to minutes); beyond, a flood is dropped here, counted, logged
DROP_LOG_S = 60.0


def type_filter(*allowed: int) -> bytes:
    """The ICMP6_FILTER bitmap passing only `allowed` types (a set bit blocks a type)."""
    words = [0xFFFFFFFF] * 8
    for kind in allowed:
        words[kind >> 5] &= ~(1 << (kind & 31))
    return struct.pack("=8I", *words)


def parse_advert(
    data: bytes, source: str, scope_id: int, hop_limit: int | None
) -> RouterAdvertised | None:
    """The advertisement in `data` (the ICMPv6 message, from `source` on interface
    `scope_id`), or None when a host must ignore it."""
    if len(data) < RA_MIN_LENGTH or data[0] != ROUTER_ADVERT or data[1] != 0:
        return None
    if hop_limit != HOP_LIMIT or scope_id <= 0:
        return None
    try:
        router = ipaddress.IPv6Address(source.split("%", 1)[0])
    except ValueError:
        return None
    if not router.is_link_local:
        return None
    (lifetime,) = struct.unpack_from("!H", data, 6)
    return RouterAdvertised(scope_id, str(router), lifetime)


def _hop_limit(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, value in ancillary:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
            return int.from_bytes(value[:4], sys.byteorder)
    return None


async def _readable(sock: socket.socket) -> None:
    """Until `sock` has a datagram to read."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


class TokenBucket:
    """At most `rate` a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class RouterAdvertListener:
    """The RouterAdverts port: one raw ICMPv6 socket for every link of the namespace."""

    def __init__(self) -> None:
        self.ignored = 0  # advertisements a host must ignore (logged at DEBUG)
        self.dropped = 0  # valid ones over the rate limit
        self._drop_log_at = 0.0

    def _over_limit(self, bucket: TokenBucket, now: float) -> bool:
        if bucket.take(now):
            return False
        self.dropped += 1
        if now >= self._drop_log_at:
            log.warning(
                "router advertisements: more than %.0f a second; %d dropped so far",
                RATE_PER_S,
                self.dropped,
            )
            self._drop_log_at = now + DROP_LOG_S
        return True

    @staticmethod
    def _socket() -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, type_filter(ROUTER_ADVERT))
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def events(self) -> AsyncIterator[RouterAdvertised]:
        """Each valid advertisement as it comes; the socket is opened again after an error."""
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(RATE_PER_S, BURST, loop.time())
        while True:
            try:
                sock = self._socket()
            except OSError as error:
                log.error(
                    "router advertisements: cannot listen (%s); IPv6 routers withdrawing "
                    "themselves are noticed only when their lifetime ends; trying again "
                    "in %.0f s",
                    error,
                    RESTART_S,
                )
                await asyncio.sleep(RESTART_S)
                continue
            try:
                while True:
                    try:
                        data, ancillary, _, address = sock.recvmsg(DATAGRAM_MAX, ANCILLARY)
                    except BlockingIOError:
                        await _readable(sock)
                        continue
                    await asyncio.sleep(0)  # a flood must not hold the event loop
                    advert = parse_advert(data, address[0], address[3], _hop_limit(ancillary))
                    if advert is None:
                        self.ignored += 1
                        log.debug("router advertisement from %s ignored (invalid)", address[0])
                    elif not self._over_limit(bucket, loop.time()):
                        yield advert
            except OSError as error:
                log.warning("router advertisements: %s; listening again", error)
                await asyncio.sleep(RESTART_S)
            finally:
                with contextlib.suppress(OSError):
                    sock.close()
