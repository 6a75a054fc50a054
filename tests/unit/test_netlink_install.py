"""How the netlink adapter adds pingu's route when the kernel says "File exists": the
requests it sends, without a kernel (a stand-in for the pyroute2 request socket)."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from pingu.adapters.netlink import NetlinkRouteTable
from pingu.domain.model import Family, Route


class ExistsOnAppend:
    """Answers every `append` with EEXIST, as the kernel does when the slot holds a route
    of the same path, and dumps `table` (route messages); records every request."""

    def __init__(self, table: list[dict[str, Any]]) -> None:
        self.table = table
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def route(self, command: str, **spec: Any) -> AsyncIterator[dict[str, Any]] | None:
        self.requests.append((command, spec))
        if command == "append":
            raise NetlinkError(errno.EEXIST, "File exists")
        if command == "dump":
            return self._dump()
        return None

    async def _dump(self) -> AsyncIterator[dict[str, Any]]:
        for msg in self.table:
            yield msg


def in_slot(route: Route, proto: int) -> dict[str, Any]:
    """The kernel's message of a route of `route`'s path and slot, of protocol `proto`."""
    family = socket.AF_INET6 if route.family is Family.IPV6 else socket.AF_INET
    return {"family": family, "dst_len": 0, "oif": route.ifindex, "gateway": route.gateway,
            "priority": route.metric, "proto": proto, "table": 254}  # fmt: skip


def installed(route: Route, there: int) -> list[tuple[str, int | None]]:
    """The requests of an install of `route` where the slot holds its path, of `there`."""
    table = NetlinkRouteTable()
    stand_in = ExistsOnAppend([in_slot(route, there)])
    table._requests = stand_in
    asyncio.run(table.install(route))
    return [(command, spec.get("proto")) for command, spec in stand_in.requests]


def test_an_ipv6_route_of_the_same_metric_and_gateway_is_replaced_by_pingus() -> None:
    # IPv6 keeps one route per destination, metric and next hop, whatever its protocol:
    # "File exists" may mean a client's route (dhcpcd's, given pingu's metric) holds the
    # slot. Taking it for pingu's would leave no route once the client's is deleted.
    own = Route(2, "wan1", "fe80::1", 100, 136, family=Family.IPV6)
    assert installed(own, there=16) == [("append", 136), ("dump", None), ("replace", 136)]


def test_an_ipv6_route_of_pingus_that_is_there_is_left_as_it_is() -> None:
    # pingu's own route confirmed at each router advertisement: no replace, so no
    # notification of a change that is none.
    own = Route(2, "wan1", "fe80::1", 100, 136, family=Family.IPV6)
    assert installed(own, there=136) == [("append", 136), ("dump", None)]


def test_an_ipv6_route_of_pingus_with_other_attributes_is_replaced() -> None:
    # The first advertisement's route had a hop limit, the next one's none: pingu's new
    # route takes the old one's place (its removal would take the only one away).
    own = Route(2, "wan1", "fe80::1", 100, 136, family=Family.IPV6)
    hoplimit = {**in_slot(own, 136), "metrics": {"attrs": [("RTAX_HOPLIMIT", 64)]}}
    table = NetlinkRouteTable()
    stand_in = ExistsOnAppend([hoplimit])
    table._requests = stand_in
    asyncio.run(table.install(own))
    assert [command for command, _ in stand_in.requests] == ["append", "dump", "replace"]


def test_an_ipv4_route_that_exists_is_left_as_it_is() -> None:
    # IPv4 tells routes of different protocols apart: "File exists" is pingu's own.
    assert installed(Route(2, "wan1", "192.0.2.1", 100, 136), there=136) == [("append", 136)]
