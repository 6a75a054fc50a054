"""How the netlink adapter adds pingu's route when the kernel says "File exists": the
requests it sends, without a kernel (a stand-in for the pyroute2 request socket)."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from pingu.adapters.netlink import NetlinkRouteTable
from pingu.domain.model import Family, Route


class ExistsOnAppend:
    """Answers every `append` with EEXIST, as the kernel does when the slot holds the
    route already; records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def route(self, command: str, **spec: Any) -> None:
        self.requests.append((command, spec))
        if command == "append":
            raise NetlinkError(errno.EEXIST, "File exists")


def installed(route: Route) -> list[tuple[str, int]]:
    table = NetlinkRouteTable()
    socket = ExistsOnAppend()
    table._requests = socket
    asyncio.run(table.install(route))
    return [(command, spec["proto"]) for command, spec in socket.requests]


def test_an_ipv6_route_of_the_same_metric_and_gateway_is_replaced_by_pingus() -> None:
    # IPv6 keeps one route per destination, metric and next hop, whatever its protocol:
    # "File exists" may mean a client's route (dhcpcd's, given pingu's metric) holds the
    # slot. Taking it for pingu's would leave no route once the client's is deleted.
    own = Route(2, "wan1", "fe80::1", 100, 136, family=Family.IPV6)
    assert installed(own) == [("append", 136), ("replace", 136)]


def test_an_ipv4_route_that_exists_is_left_as_it_is() -> None:
    # IPv4 tells routes of different protocols apart: "File exists" is pingu's own.
    assert installed(Route(2, "wan1", "192.0.2.1", 100, 136)) == [("append", 136)]
