"""Watches the echoes pingu sends on an uplink and the replies it gets, so that each
failover can be split into what the settings impose and what pingu adds."""

from __future__ import annotations

import bisect
import socket
import struct
import threading
import time
from dataclasses import dataclass

from bench.namespaces import in_namespace

ETH_P_ALL = 0x0003
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
IPPROTO_ICMPV6 = 58
IPV6_HEADER = 40
PACKET_OUTGOING = 4
_ICMP = struct.Struct("!BBHHH")
_POLL_S = 0.2


@dataclass(frozen=True)
class Echo:
    """An ICMP or ICMPv6 echo request or reply seen on an uplink."""

    time: float  # time.monotonic() when read
    request: bool
    src: str
    dst: str
    ident: int
    seq: int


def parse_echo(packet: bytes, now: float) -> Echo | None:
    """The echo in an IPv4 or IPv6 packet (network header first; IPv6: ICMPv6 right after
    the header, as pingu sends it), or None."""
    if packet[:1] and packet[0] >> 4 == 6:
        return _parse_echo6(packet, now)
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_ICMP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + _ICMP.size:
        return None
    kind, _code, _sum, ident, seq = _ICMP.unpack_from(packet, ihl)
    if kind not in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY):
        return None
    src, dst = socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])
    return Echo(now, kind == ICMP_ECHO_REQUEST, src, dst, ident, seq)


def _parse_echo6(packet: bytes, now: float) -> Echo | None:
    if len(packet) < IPV6_HEADER + _ICMP.size or packet[6] != IPPROTO_ICMPV6:
        return None
    kind, _code, _sum, ident, seq = _ICMP.unpack_from(packet, IPV6_HEADER)
    if kind not in (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY):
        return None
    src = socket.inet_ntop(socket.AF_INET6, packet[8:24])
    dst = socket.inet_ntop(socket.AF_INET6, packet[24:40])
    return Echo(now, kind == ICMPV6_ECHO_REQUEST, src, dst, ident, seq)


class EchoSniffer:
    """Every echo request leaving, and every reply arriving on, one interface of a lab
    namespace (a packet socket of ours: it sees pingu's frames, pingu does not see it)."""

    def __init__(self, ns: str, ifname: str) -> None:
        self.ifname = ifname
        self.echoes: list[Echo] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._sock = in_namespace(ns, lambda: _bound(ifname))
        self._thread = threading.Thread(target=self._read, name=f"sniff {ifname}", daemon=True)

    def __enter__(self) -> EchoSniffer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                packet, address = self._sock.recvfrom(256)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue  # ENETDOWN while the carrier is away: keep listening
            echo = parse_echo(packet, time.monotonic())
            if echo is None:
                continue
            if echo.request != (address[2] == PACKET_OUTGOING):
                continue  # requests we care about leave; replies arrive
            with self._lock:
                self.echoes.append(echo)
                self._lock.notify_all()

    def between(self, start: float, end: float) -> list[Echo]:
        with self._lock:
            first = bisect.bisect_left(self.echoes, start, key=_echo_time)
            last = bisect.bisect_right(self.echoes, end, key=_echo_time)
            return self.echoes[first:last]

    def next_round(self, source: str, after: float, timeout: float) -> float | None:
        """When the first echo (seq 0) of a round from ``source`` left, after ``after``;
        None if no round started within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            index = bisect.bisect_right(self.echoes, after, key=_echo_time)
            while True:
                for echo in self.echoes[index:]:
                    if echo.request and echo.seq == 0 and echo.src == source and echo.time > after:
                        return echo.time
                index = len(self.echoes)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._lock.wait(remaining)


def _echo_time(echo: Echo) -> float:
    return echo.time


def _bound(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    try:
        sock.bind((ifname, ETH_P_ALL))
        sock.settimeout(_POLL_S)
    except OSError:
        sock.close()
        raise
    return sock
