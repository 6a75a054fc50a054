"""A route and link watcher on a raw rtnetlink socket: every change in one namespace,
timestamped when it reaches us, plus the default routes of table main as they stand (per
family: IPv4, and IPv6 when subscribed to).

Hand-parsed on purpose: the bench must keep up with a burst of events at a few
microseconds each, and must not share pyroute2 (the thing under measurement)."""

from __future__ import annotations

import bisect
import errno
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bench.namespaces import in_namespace

NETLINK_ROUTE = 0
SO_RCVBUFFORCE = 33
RCVBUF = 8 << 20
RTMGRP_LINK = 0x1
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_NEWROUTE, RTM_DELROUTE = 16, 17, 24, 25
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x100, 0x200, 0x400, 0x800
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE, RTA_EXPIRES = 1, 4, 5, 6, 15, 23
IFLA_IFNAME, IFLA_CARRIER = 3, 33
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
RTN_UNICAST, RTN_BLACKHOLE = 1, 6
MAIN_TABLE = 254
PROTO_DHCP = 16
PROTO_RA = 9
FAMILIES = {socket.AF_INET: 4, socket.AF_INET6: 6}
ADDRESS_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}

_NLMSG = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")
_IFINFO = struct.Struct("=BxHiII")
_RTA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_POLL_S = 0.2


@dataclass(frozen=True)
class RouteEvent:
    """A route added (``new``) or deleted (``del``), of family 4 or 6."""

    time: float  # time.monotonic() when the datagram was read
    kind: str
    dst: str
    dst_len: int
    table: int
    proto: int
    type: int
    oif: int | None
    gateway: str | None
    metric: int
    replace: bool
    family: int = 4

    @property
    def is_main_default(self) -> bool:
        return self.dst_len == 0 and self.table == MAIN_TABLE

    def owned(self, proto: int, oif: int, family: int = 4) -> bool:
        """A default route of table main of ``family`` with protocol ``proto`` on
        interface ``oif``."""
        return (
            self.is_main_default
            and self.family == family
            and self.proto == proto
            and self.oif == oif
        )


@dataclass(frozen=True)
class LinkEvent:
    """A link changed (``new``) or went away (``del``)."""

    time: float
    kind: str
    index: int
    name: str | None
    admin_up: bool
    carrier: bool


Event = RouteEvent | LinkEvent
DefaultKey = tuple[int | None, str | None, int, int]  # oif, gateway, metric, proto


def _event_time(event: Event) -> float:
    return event.time


def _attributes(data: bytes, offset: int, end: int) -> Iterator[tuple[int, bytes]]:
    while offset + _RTA.size <= end:
        length, kind = _RTA.unpack_from(data, offset)
        if length < _RTA.size:
            return
        yield kind & 0x3FFF, data[offset + _RTA.size : offset + length]
        offset += (length + 3) & ~3


def _route(data: bytes, offset: int, end: int, *, kind: int, flags: int, now: float) -> RouteEvent:
    address_family, dst_len, _src, _tos, table, proto, _scope, rtype, _fl = _RTMSG.unpack_from(
        data, offset
    )
    size = 4 if address_family == socket.AF_INET else 16
    dst, oif, gateway, metric = "0.0.0.0" if size == 4 else "::", None, None, 0
    for attr, value in _attributes(data, offset + _RTMSG.size, end):
        if attr == RTA_DST and len(value) == size:
            dst = socket.inet_ntop(address_family, value)
        elif attr == RTA_OIF:
            oif = _U32.unpack(value[:4])[0]
        elif attr == RTA_GATEWAY and len(value) == size:
            gateway = socket.inet_ntop(address_family, value)
        elif attr == RTA_PRIORITY:
            metric = _U32.unpack(value[:4])[0]
        elif attr == RTA_TABLE:
            table = _U32.unpack(value[:4])[0]
    return RouteEvent(
        time=now,
        kind="new" if kind == RTM_NEWROUTE else "del",
        dst=dst,
        dst_len=dst_len,
        table=table,
        proto=proto,
        type=rtype,
        oif=oif,
        gateway=gateway,
        metric=metric,
        replace=bool(flags & NLM_F_REPLACE),
        family=FAMILIES[address_family],
    )


def _link(data: bytes, offset: int, end: int, kind: int, now: float) -> LinkEvent:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(data, offset)
    name, carrier = None, bool(flags & IFF_LOWER_UP)
    for attr, value in _attributes(data, offset + _IFINFO.size, end):
        if attr == IFLA_IFNAME:
            name = value.split(b"\0", 1)[0].decode(errors="replace")
        elif attr == IFLA_CARRIER and value:
            carrier = bool(value[0])
    return LinkEvent(
        now, "new" if kind == RTM_NEWLINK else "del", index, name, bool(flags & 1), carrier
    )


def parse(data: bytes, now: float) -> list[Event]:
    """The route and link events in one netlink datagram (routes of IPv4 and IPv6)."""
    events: list[Event] = []
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size:
            break
        body, end = offset + _NLMSG.size, min(offset + length, len(data))
        if kind in (RTM_NEWROUTE, RTM_DELROUTE) and data[body] in FAMILIES:
            events.append(_route(data, body, end, kind=kind, flags=flags, now=now))
        elif kind in (RTM_NEWLINK, RTM_DELLINK):
            events.append(_link(data, body, end, kind, now))
        offset += (length + 3) & ~3
    return events


@dataclass
class DefaultTable:
    """The default routes of table main, replayed from events, and every moment it was
    empty once it had held a route."""

    routes: dict[DefaultKey, float] = field(default_factory=dict)  # key -> time added
    armed: bool = False
    empty_since: float | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)

    def seed(self, keys: list[DefaultKey], now: float) -> None:
        self.routes = dict.fromkeys(keys, now)
        self.armed = bool(keys)
        self.empty_since = None

    def apply(self, event: RouteEvent) -> None:
        if not event.is_main_default:
            return
        key = (event.oif, event.gateway, event.metric, event.proto)
        if event.kind == "del":
            self.routes.pop(key, None)
        else:
            if event.replace:  # the route with this metric (and tos 0) is swapped in place
                for old in [k for k in self.routes if k[2] == event.metric]:
                    del self.routes[old]
            self.routes[key] = event.time
        if self.routes:
            if self.empty_since is not None:
                self.gaps.append((self.empty_since, event.time))
                self.empty_since = None
            self.armed = True
        elif self.armed and self.empty_since is None:
            self.empty_since = event.time


class Monitor:
    """Route and link events of one namespace, read on a thread of ours (IPv6 routes too
    when ``groups`` has RTMGRP_IPV6_ROUTE); the default-route replays are per family."""

    def __init__(self, ns: str, groups: int = RTMGRP_LINK | RTMGRP_IPV4_ROUTE) -> None:
        self.ns = ns
        self.events: list[Event] = []
        self.tables = {4: DefaultTable(), 6: DefaultTable()}
        self.overflows = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._sock = in_namespace(ns, lambda: _subscribed(groups))
        self._thread = threading.Thread(target=self._read, name=f"monitor {ns}", daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading (idempotent); what was seen stays available."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._sock.close()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError as error:
                if error.errno == errno.ENOBUFS:
                    with self._cond:
                        self.overflows += 1
                    continue
                if self._stop.is_set():
                    return
                raise
            events = parse(data, time.monotonic())
            with self._cond:
                for event in events:
                    if isinstance(event, RouteEvent):
                        self.tables[event.family].apply(event)
                self.events.extend(events)
                self._cond.notify_all()

    def seed_defaults(self, keys: list[DefaultKey], family: int = 4) -> None:
        """Start the default-route replay from a dump taken after subscribing."""
        with self._cond:
            self.tables[family].seed(keys, time.monotonic())

    def default_keys(self, family: int = 4) -> set[DefaultKey]:
        with self._cond:
            return set(self.tables[family].routes)

    def gaps(self, family: int = 4) -> list[tuple[float, float]]:
        with self._cond:
            return list(self.tables[family].gaps)

    def wait(self, match: Callable[[Event], bool], after: float, timeout: float) -> Event | None:
        """The first event at or after monotonic time ``after`` that ``match``es, waiting
        at most ``timeout`` seconds for it; None if none came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = bisect.bisect_left(self.events, after, key=_event_time)
            while True:
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    if event.time >= after and match(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def wait_silent(self, quiet: float, timeout: float) -> bool:
        """Wait until no event has come for ``quiet`` seconds (at most ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                last = self.events[-1].time if self.events else 0.0
            if time.monotonic() - last >= quiet:
                return True
            time.sleep(min(quiet, 0.1))
        return False

    def wait_state(
        self, check: Callable[[set[DefaultKey]], bool], timeout: float, family: int = 4
    ) -> float | None:
        """The time at which the default routes of ``family`` first satisfied ``check``
        (now, if they already do), waiting at most ``timeout`` seconds; None if they never
        did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check(set(self.tables[family].routes)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self.events[-1].time if self.events else time.monotonic()


def _subscribed(groups: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        sock.bind((0, groups))
        sock.settimeout(_POLL_S)
    except OSError:
        sock.close()
        raise
    return sock


class RouteWriter:
    """Adds and deletes default routes of table main in one namespace, as a DHCP client
    (IPv4) or the kernel for a router advertisement (IPv6, with a lifetime) would; each
    call returns once the kernel acknowledged it."""

    def __init__(self, ns: str) -> None:
        self._sock = in_namespace(ns, _request_socket)
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def add_default(
        self,
        oif: int,
        gateway: str,
        metric: int,
        proto: int = PROTO_DHCP,
        *,
        expires: int | None = None,
    ) -> None:
        """Add a default route (of the gateway's family); ``expires``: an IPv6 route's
        lifetime in seconds, as the kernel gives a router advertisement's."""
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        self._request(
            RTM_NEWROUTE, flags, oif=oif, gateway=gateway, metric=metric, proto=proto,
            expires=expires,
        )  # fmt: skip

    def delete_default(self, oif: int, gateway: str, metric: int, proto: int) -> None:
        flags = NLM_F_REQUEST | NLM_F_ACK
        self._request(RTM_DELROUTE, flags, oif=oif, gateway=gateway, metric=metric, proto=proto)

    def _request(
        self,
        kind: int,
        flags: int,
        *,
        oif: int,
        gateway: str,
        metric: int,
        proto: int,
        expires: int | None = None,
    ) -> None:
        self._seq += 1
        family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
        rtmsg = _RTMSG.pack(family, 0, 0, 0, MAIN_TABLE, proto, 0, RTN_UNICAST, 0)
        attrs = (
            _attr(RTA_GATEWAY, socket.inet_pton(family, gateway))
            + _attr(RTA_OIF, _U32.pack(oif))
            + _attr(RTA_PRIORITY, _U32.pack(metric))
        )
        if expires is not None:
            attrs += _attr(RTA_EXPIRES, _U32.pack(expires))
        body = rtmsg + attrs
        self._sock.send(_NLMSG.pack(_NLMSG.size + len(body), kind, flags, self._seq, 0) + body)
        while True:
            data = self._sock.recv(65536)
            _length, answer, _flags, seq, _pid = _NLMSG.unpack_from(data, 0)
            if answer == NLMSG_ERROR and seq == self._seq:
                code = -struct.unpack_from("=i", data, _NLMSG.size)[0]
                if code:
                    raise OSError(code, f"netlink: {errno.errorcode.get(code, code)}")
                return


def _attr(kind: int, value: bytes) -> bytes:
    raw = _RTA.pack(_RTA.size + len(value), kind) + value
    return raw + b"\0" * (-len(raw) % 4)


def _request_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    sock.bind((0, 0))
    sock.settimeout(5.0)
    return sock
