"""The route table port on pyroute2 0.9: dumps, a live event stream with resync, route changes."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkDumpInterrupted, NetlinkError
from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
)

from pingu.adapters.bpf import Insn, assemble, attach_filter
from pingu.domain.events import (
    Event,
    LinkChanged,
    LinkVanished,
    RouteAppeared,
    RouteVanished,
    TableSnapshot,
)
from pingu.domain.model import MAIN_TABLE, Family, Route, RouteAttributes
from pingu.domain.ports import Resync, RouteChangeFailed

log = logging.getLogger(__name__)

ARPHRD_ETHER = 1
IFF_UP = 0x1
MONITOR_GROUPS = (
    RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_ROUTE | RTMGRP_IPV6_IFADDR
)
FAMILIES = {socket.AF_INET: Family.IPV4, socket.AF_INET6: Family.IPV6}
ADDRESS_FAMILIES = {family: number for number, family in FAMILIES.items()}
DEFAULT_DESTINATION = {Family.IPV4: "0.0.0.0/0", Family.IPV6: "::/0"}
# IFA_F_*: an IPv6 address pingu may probe from is none of these.
IFA_F_TEMPORARY, IFA_F_DADFAILED, IFA_F_DEPRECATED, IFA_F_TENTATIVE = 0x01, 0x08, 0x20, 0x40
_UNUSABLE_ADDRESS = IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE
RT_SCOPE_UNIVERSE = 0
USER_HZ = 100  # rta_expires of RTA_CACHEINFO counts in clock ticks
DUMP_ATTEMPTS = 5
RESYNC_PAUSE_S = 0.2
RESYNC_PAUSE_MAX_S = 5.0
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
NLM_F_REPLACE = 0x100
RTNH_F_ONLINK = 0x4
_RTAX_PREFIX = "RTAX_"
_NLMSG_TYPE = 4  # offset of nlmsghdr.nlmsg_type (u16, host byte order)
_RTM_DST_LEN = 16 + 1  # after the 16-byte nlmsghdr: rtmsg.rtm_family, then rtm_dst_len
_KEEP_ALL = 0xFFFFFFFF


def monitor_filter(byteorder: str = sys.byteorder) -> tuple[Insn, ...]:
    """A kernel-side filter for the monitor socket: route notifications of anything but a
    default route (rtm_dst_len != 0) never reach pingu, so a flood of unrelated routes costs
    neither parsing nor a receive-buffer overflow. Links and addresses all pass.

    Every rtnetlink notification is a datagram of one message, so the first header is the
    only one. nlmsg_type is host-endian; rtnetlink types fit in its low byte.
    """
    low_byte = _NLMSG_TYPE if byteorder == "little" else _NLMSG_TYPE + 1
    return assemble(
        [
            ("ld", 1, low_byte),
            ("jeq", RTM_NEWROUTE, "route", "other"),
            ("label", "other"),
            ("jeq", RTM_DELROUTE, "route", "keep"),
            ("label", "route"),
            ("ld", 1, _RTM_DST_LEN),
            ("jeq", 0, "keep", "drop"),
            ("label", "keep"),
            ("ret", _KEEP_ALL),
            ("label", "drop"),
            ("ret", 0),
        ]
    )


class Message(Protocol):
    """The part of a pyroute2 netlink message this adapter reads."""

    def get(self, key: Any, default: Any = None) -> Any: ...

    def __getitem__(self, key: str) -> Any: ...


@dataclass
class Addresses:
    """An interface's addresses pingu may probe from: its IPv4 ones (the first is used),
    and its global IPv6 ones with their IFA_F_* flags (one neither tentative, deprecated
    nor failed is used; a stable one before a temporary one)."""

    ipv4: list[str] = field(default_factory=list)
    ipv6: dict[str, int] = field(default_factory=dict)

    def source(self, family: Family) -> str | None:
        if family is Family.IPV4:
            return self.ipv4[0] if self.ipv4 else None
        usable = [(flags & IFA_F_TEMPORARY, a) for a, flags in self.ipv6.items()]
        usable = [(t, a) for t, a in usable if not self.ipv6[a] & _UNUSABLE_ADDRESS]
        return min(usable)[1] if usable else None

    def update(self, msg: Message, *, added: bool) -> None:
        """Follow RTM_NEWADDR / RTM_DELADDR (an IPv6 address's flags change as its
        duplicate address detection ends: a new RTM_NEWADDR)."""
        family = FAMILIES.get(msg.get("family"))
        if family is Family.IPV4:
            address = own_address(msg)
            if added and address not in self.ipv4:
                self.ipv4.append(address)
            elif not added and address in self.ipv4:
                self.ipv4.remove(address)
        elif family is Family.IPV6 and int(msg.get("scope") or 0) == RT_SCOPE_UNIVERSE:
            address = own_address(msg)
            if added:
                self.ipv6[address] = address_flags(msg)
            else:
                self.ipv6.pop(address, None)


@dataclass
class LinkInfo:
    """What the adapter remembers of a link, to name routes and carry addresses."""

    ifindex: int
    ifname: str
    carrier: bool
    admin_up: bool
    point_to_point: bool
    address: str | None = None
    address6: str | None = None

    def event(self) -> LinkChanged:
        return LinkChanged(
            self.ifindex,
            self.ifname,
            self.carrier,
            self.admin_up,
            self.point_to_point,
            self.address,
            self.address6,
        )


def link_info(msg: Message, addresses: Addresses | None) -> LinkInfo:
    """A link message as the adapter's record of it."""
    known = addresses or Addresses()
    return LinkInfo(
        ifindex=int(msg["index"]),
        ifname=str(msg.get("ifname")),
        carrier=bool(msg.get("carrier", 0)),
        admin_up=bool(msg["flags"] & IFF_UP),
        point_to_point=int(msg["ifi_type"]) != ARPHRD_ETHER,
        address=known.source(Family.IPV4),
        address6=known.source(Family.IPV6),
    )


def own_address(msg: Message) -> str:
    """The interface's own address (either family): IFA_LOCAL (on point-to-point links,
    `addr add LOCAL peer PEER`, IFA_ADDRESS is the peer's), else IFA_ADDRESS."""
    return str(msg.get("local") or msg.get("address"))


def address_flags(msg: Message) -> int:
    """IFA_FLAGS (32 bits) when the kernel gives it, else ifa_flags (8 bits)."""
    flags = msg.get("IFA_FLAGS")
    return int(flags if flags is not None else msg["flags"])


def route_of(msg: Message, names: Callable[[int], str | None]) -> Route | None:
    """A default route message (IPv4 or IPv6) as a domain Route, with every attribute a
    restore needs (source, onlink, route metrics, preference, lifetime left); None for
    anything pingu ignores."""
    family = FAMILIES.get(msg.get("family"))
    if family is None or msg.get("dst_len") != 0:
        return None
    oif = msg.get("oif")
    if oif is None:  # multipath or blackhole: not an uplink's route
        return None
    return Route(
        ifindex=int(oif),
        ifname=names(int(oif)),
        gateway=msg.get("gateway"),
        metric=int(msg.get("priority") or 0),
        proto=int(msg.get("proto") or 0),
        table=int(msg.get("table") or msg.get("rtm_table") or 0),
        dst_len=0,
        scope=int(msg.get("scope") or 0),
        tos=int(msg.get("tos") or 0),
        attributes=route_attributes(msg),
        family=family,
        expires=lifetime_left(msg),
    )


def lifetime_left(msg: Message) -> float | None:
    """Seconds an IPv6 route that ends by itself (a router advertisement's) has left."""
    cache = msg.get("cacheinfo")
    ticks = int(cache.get("rta_expires") or 0) if cache is not None else 0
    return ticks / USER_HZ if ticks > 0 else None


def route_attributes(msg: Message) -> RouteAttributes:
    """RTA_PREFSRC, RTNH_F_ONLINK and RTA_METRICS (`mtu`, `advmss`, `initcwnd`, `lock`...)."""
    metrics: list[tuple[str, int]] = []
    nested = msg.get("metrics")
    for name, value in nested.get("attrs", []) if nested is not None else []:
        if isinstance(name, str) and name.startswith(_RTAX_PREFIX) and isinstance(value, int):
            metrics.append((name.removeprefix(_RTAX_PREFIX).lower(), value))
    prefsrc = msg.get("prefsrc")
    pref = msg.get("pref")
    return RouteAttributes(
        prefsrc=str(prefsrc) if prefsrc else None,
        onlink=bool(int(msg.get("flags") or 0) & RTNH_F_ONLINK),
        metrics=tuple(sorted(metrics)),
        pref=int(pref) if pref is not None and msg.get("family") == socket.AF_INET6 else None,
    )


def was_replaced(msg: Message) -> bool:
    """Whether a RTM_NEWROUTE notification tells of a route that took another's place."""
    header = msg.get("header") or {}
    return bool(int(header.get("flags", 0)) & NLM_F_REPLACE)


def route_spec(route: Route) -> dict[str, Any]:
    """The exact netlink key of a route, with its attributes, so that a change touches that
    route and no other (the kernel matches source and metrics too when deleting)."""
    spec: dict[str, Any] = {
        "dst": DEFAULT_DESTINATION[route.family],
        "oif": route.ifindex,
        "priority": route.metric,
        "proto": route.proto,
        "table": route.table,
        "scope": route.scope,
        "family": ADDRESS_FAMILIES[route.family],
    }
    if route.tos:
        spec["tos"] = route.tos
    if route.gateway is not None:
        spec["gateway"] = route.gateway
    attributes = route.attributes
    if attributes.prefsrc is not None:
        spec["prefsrc"] = attributes.prefsrc
    if attributes.onlink:
        spec["flags"] = RTNH_F_ONLINK
    if attributes.metrics:
        spec["metrics"] = {_RTAX_PREFIX + name.upper(): value for name, value in attributes.metrics}
    if attributes.pref is not None:
        spec["pref"] = attributes.pref
    return spec


def with_lifetime(spec: dict[str, Any], route: Route) -> dict[str, Any]:
    """The spec of a route to add that ends by itself after `route.expires` seconds."""
    if route.expires is None:
        return spec
    # pyroute2 encodes RTA_EXPIRES as raw bytes: a u32 of seconds in host order.
    return {**spec, "expires": struct.pack("=I", max(1, round(route.expires)))}


class NetlinkRouteTable:
    """Table main through rtnetlink, in the current network namespace (or `netns`)."""

    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns
        self._links: dict[int, LinkInfo] = {}
        self._addresses: dict[int, Addresses] = {}
        self._requests: AsyncIPRoute | None = None
        self.resyncs = 0

    # -- sockets -------------------------------------------------------------------------

    def _socket(self) -> AsyncIPRoute:
        kwargs: dict[str, Any] = {"ext_ack": True, "strict_check": True}
        if self._netns is not None:
            kwargs.update(netns=self._netns, flags=0)
        return AsyncIPRoute(**kwargs)

    async def _request_socket(self) -> AsyncIPRoute:
        if self._requests is None:
            self._requests = self._socket()
            await self._requests.setup_endpoint()
        return self._requests

    async def close(self) -> None:
        if self._requests is not None:
            self._requests.close()
            self._requests = None

    # -- reading -------------------------------------------------------------------------

    def name_of(self, ifindex: int) -> str | None:
        info = self._links.get(ifindex)
        return info.ifname if info else None

    async def snapshot(self, *, initial: bool = False) -> TableSnapshot:
        """Links (with their IPv4 address) and the default routes of table main, read in one
        go: the state to reconcile. The kernel filters the route dump by table."""
        for attempt in range(1, DUMP_ATTEMPTS + 1):
            try:
                return await self._dump(initial)
            except NetlinkDumpInterrupted:
                log.debug("netlink dump interrupted (attempt %d), dumping again", attempt)
        return await self._dump(initial)

    async def _dump(self, initial: bool) -> TableSnapshot:
        ipr = await self._request_socket()
        addresses: dict[int, Addresses] = {}
        for number in FAMILIES:
            async for msg in await ipr.addr("dump", family=number):
                addresses.setdefault(int(msg["index"]), Addresses()).update(msg, added=True)
        links: dict[int, LinkInfo] = {}
        async for msg in await ipr.link("dump"):
            index = int(msg["index"])
            links[index] = link_info(msg, addresses.get(index))
        self._links, self._addresses = links, addresses
        routes: list[Route] = []
        for number in FAMILIES:
            # An explicit (empty) dump_filter sends `table` to the kernel (strict checking),
            # instead of matching it in Python over every route of every table.
            dump = await ipr.route("dump", dump_filter={}, family=number, table=MAIN_TABLE)
            async for msg in dump:
                route = route_of(msg, self.name_of)
                if route is not None:
                    routes.append(route)
        return TableSnapshot(tuple(i.event() for i in links.values()), tuple(routes), initial)

    async def events(self) -> AsyncIterator[Event | Resync]:
        """Subscribe, ask for a full read (Resync), then follow changes; on overflow or
        error, start over."""
        pause = RESYNC_PAUSE_S
        while True:
            monitor = self._socket()
            try:
                await monitor.bind(groups=MONITOR_GROUPS)
                attach_filter(monitor.socket, monitor_filter())
                yield Resync()
                pause = RESYNC_PAUSE_S
                while True:
                    async for msg in monitor.get():
                        for event in self._translate(msg):
                            yield event
                        if msg.get("event") == "RTM_DELADDR":
                            # The kernel flushes the routes through a deleted address
                            # without a RTM_DELROUTE: read the table again.
                            yield Resync()
            except OSError as error:
                if error.errno == errno.ENOBUFS:
                    log.warning(
                        "netlink monitor overflowed (ENOBUFS): events were lost; "
                        "resynchronising from a full dump"
                    )
                else:
                    log.error(
                        "netlink monitor failed (%s); resynchronising in %.1f s", error, pause
                    )
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, RESYNC_PAUSE_MAX_S)
                self.resyncs += 1
                await self.close()
            finally:
                monitor.close()

    def _translate(self, msg: Message) -> list[Event]:
        kind = msg.get("event")
        if kind in ("RTM_NEWROUTE", "RTM_DELROUTE"):
            route = route_of(msg, self.name_of)
            if route is None:
                return []
            if kind == "RTM_NEWROUTE":
                return [RouteAppeared(route, replaced=was_replaced(msg))]
            return [RouteVanished(route)]
        if kind == "RTM_NEWLINK":
            index = int(msg["index"])
            info = link_info(msg, self._addresses.get(index))
            if self._links.get(index) == info:
                return []
            self._links[index] = info
            return [info.event()]
        if kind == "RTM_DELLINK":
            gone = self._links.pop(int(msg["index"]), None)
            name = gone.ifname if gone else str(msg.get("ifname"))
            self._addresses.pop(int(msg["index"]), None)
            return [LinkVanished(int(msg["index"]), name)]
        if kind in ("RTM_NEWADDR", "RTM_DELADDR"):
            return self._address_changed(msg, added=kind == "RTM_NEWADDR")
        return []

    def _address_changed(self, msg: Message, added: bool) -> list[Event]:
        index = int(msg["index"])
        addresses = self._addresses.setdefault(index, Addresses())
        addresses.update(msg, added=added)
        info = self._links.get(index)
        if info is None:
            return []
        sources = (addresses.source(Family.IPV4), addresses.source(Family.IPV6))
        if (info.address, info.address6) == sources:
            return []
        info.address, info.address6 = sources
        return [info.event()]

    # -- writing -------------------------------------------------------------------------

    async def install(self, route: Route) -> None:
        """Add pingu's route beside any other; one identical already there is success.

        IPv6 keeps one route per destination, metric and next hop, whatever its protocol:
        there, "File exists" may come of a client's route in that slot (dhcpcd's, given
        the uplink's metric), which would be taken for pingu's and then deleted as
        captured, leaving none. So it is replaced, in one call: the route left is this one
        (an identical one of pingu's is replaced by itself)."""
        added = await self._change("append", route, ok={errno.EEXIST})
        if not added and route.family is Family.IPV6:
            await self._change("replace", route, ok=set())

    async def remove(self, route: Route) -> None:
        """Remove pingu's route by its exact key; already gone is success."""
        await self._change("del", route, ok={errno.ESRCH, errno.ENOENT})

    async def delete_foreign(self, route: Route) -> None:
        """Delete a captured route exactly as reported (never a neighbour's)."""
        await self._change("del", route, ok={errno.ESRCH, errno.ENOENT})

    async def _change(self, command: str, route: Route, ok: set[int]) -> bool:
        """Carry out `command` on `route`: True when done, False when the kernel answered
        one of the `ok` errors (nothing to do)."""
        ipr = await self._request_socket()
        spec = route_spec(route)
        adding = command in ("append", "replace")
        try:
            await ipr.route(command, **(with_lifetime(spec, route) if adding else spec))
        except NetlinkError as error:
            if error.code in ok:
                log.debug("%s %s: %s (nothing to do)", command, route.describe(), error)
                return False
            reason = os.strerror(error.code) if error.code else str(error)
            detail = str(error.args[1]) if len(error.args) > 1 else reason
            raise RouteChangeFailed(f"{command} {route.describe()}: {detail}") from error
        except OSError as error:
            await self.close()
            raise RouteChangeFailed(f"{command} {route.describe()}: {error}") from error
        return True
