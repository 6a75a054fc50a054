"""The netlink adapter's translation of kernel messages into domain events, without a kernel."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from pingu.adapters.netlink import (
    RTM_DELROUTE,
    RTM_NEWROUTE,
    NetlinkRouteTable,
    link_info,
    monitor_filter,
    route_of,
    route_spec,
    with_lifetime,
)
from pingu.domain.events import LinkChanged, LinkVanished, RouteAppeared, RouteVanished
from pingu.domain.model import Family, Route, RouteAttributes
from tests.unit.test_prober_packets import run_bpf


class Msg(dict[str, Any]):
    """Stands in for a pyroute2 message: `get` and `[]` over decoded fields."""


def route_msg(**fields: Any) -> Msg:
    base = {
        "family": socket.AF_INET,
        "dst_len": 0,
        "oif": 2,
        "gateway": "192.0.2.1",
        "priority": 1024,
        "proto": 16,
        "table": 254,
        "scope": 0,
        "event": "RTM_NEWROUTE",
    }
    base.update(fields)
    return Msg(base)


def link_msg(**fields: Any) -> Msg:
    base = {
        "index": 2,
        "ifname": "wan1",
        "carrier": 1,
        "flags": 0x1,
        "ifi_type": 1,
        "event": "RTM_NEWLINK",
    }
    base.update(fields)
    return Msg(base)


def names(index: int) -> str | None:
    return {2: "wan1"}.get(index)


def test_default_route_becomes_a_domain_route() -> None:
    assert route_of(route_msg(), names) == Route(2, "wan1", "192.0.2.1", 1024, 16)


def test_gateway_less_route_keeps_its_scope() -> None:
    route = route_of(route_msg(gateway=None, scope=253, priority=None), names)
    assert route == Route(2, "wan1", None, 0, 16, scope=253)


def test_non_default_and_multipath_routes_are_ignored() -> None:
    assert route_of(route_msg(dst_len=24), names) is None
    assert route_of(route_msg(oif=None), names) is None
    assert route_of(route_msg(family=socket.AF_BRIDGE), names) is None


def test_an_ipv6_default_route_carries_its_family_preference_and_lifetime() -> None:
    ra = route_msg(
        family=socket.AF_INET6,
        gateway="fe80::1",
        proto=9,
        pref=1,
        cacheinfo={"rta_expires": 29998},
    )
    route = route_of(ra, names)
    assert route == Route(
        2, "wan1", "fe80::1", 1024, 9, family=Family.IPV6, attributes=RouteAttributes(pref=1)
    )
    assert route is not None
    assert route.expires == 299.98
    assert route_of(route_msg(family=socket.AF_INET6, cacheinfo={"rta_expires": 0}), names)


def test_an_ipv6_route_is_added_with_its_lifetime_and_deleted_by_its_key() -> None:
    route = Route(2, "wan1", "fe80::1", 1024, 9, family=Family.IPV6, expires=120.4)
    spec = route_spec(route)
    assert (spec["dst"], spec["family"], spec["gateway"]) == ("::/0", socket.AF_INET6, "fe80::1")
    assert "expires" not in spec
    assert with_lifetime(spec, route)["expires"] == struct.pack("=I", 120)


def test_the_ipv6_source_is_a_global_address_done_with_its_duplicate_detection() -> None:
    table = NetlinkRouteTable()
    table._translate(link_msg())
    v6 = {"event": "RTM_NEWADDR", "index": 2, "family": socket.AF_INET6, "scope": 0}
    assert table._translate(Msg(v6, address="2001:db8:1::2", flags=0xC0)) == []  # tentative
    assert table._translate(Msg(v6, address="fe80::2", scope=253, flags=0x80)) == []
    (done,) = table._translate(Msg(v6, address="2001:db8:1::2", flags=0x80))
    assert isinstance(done, LinkChanged)
    assert done.address6 == "2001:db8:1::2"
    temporary = Msg(v6, address="2001:db8:1::99", flags=0x01)
    assert table._translate(temporary) == []  # the stable one is kept
    (deprecated,) = table._translate(Msg(v6, address="2001:db8:1::2", flags=0xA0))
    assert isinstance(deprecated, LinkChanged)
    assert deprecated.address6 == "2001:db8:1::99"


def test_exact_key_for_deletion() -> None:
    spec = route_spec(Route(2, "wan1", "192.0.2.1", 1024, 16))
    assert spec == {
        "dst": "0.0.0.0/0",
        "oif": 2,
        "priority": 1024,
        "proto": 16,
        "table": 254,
        "scope": 0,
        "family": socket.AF_INET,
        "gateway": "192.0.2.1",
    }
    assert "gateway" not in route_spec(Route(4, "ppp0", None, 50, 3, scope=253))


def test_link_type_decides_point_to_point() -> None:
    assert not link_info(link_msg(), None).point_to_point
    assert link_info(link_msg(ifi_type=65534), None).point_to_point
    assert link_info(link_msg(ifi_type=512), None).point_to_point
    assert not link_info(link_msg(flags=0), None).admin_up


def test_translate_follows_links_addresses_and_routes() -> None:
    table = NetlinkRouteTable()
    assert table._translate(link_msg()) == [LinkChanged(2, "wan1", True, True, False, None)]
    assert table._translate(link_msg()) == []  # nothing changed: no event
    added = Msg(event="RTM_NEWADDR", index=2, address="100.64.1.2", family=socket.AF_INET)
    assert table._translate(added) == [LinkChanged(2, "wan1", True, True, False, "100.64.1.2")]
    assert table._translate(route_msg()) == [RouteAppeared(Route(2, "wan1", "192.0.2.1", 1024, 16))]
    gone = route_msg(event="RTM_DELROUTE")
    assert table._translate(gone) == [RouteVanished(Route(2, "wan1", "192.0.2.1", 1024, 16))]
    removed = Msg(event="RTM_DELADDR", index=2, address="100.64.1.2", family=socket.AF_INET)
    assert table._translate(removed) == [LinkChanged(2, "wan1", True, True, False, None)]
    assert table._translate(Msg(event="RTM_DELLINK", index=2, ifname="wan1")) == [
        LinkVanished(2, "wan1")
    ]
    assert table._translate(Msg(event="RTM_NEWNEIGH")) == []


def test_point_to_point_address_is_the_local_one_not_the_peer() -> None:
    table = NetlinkRouteTable()
    table._translate(link_msg(index=4, ifname="ppp0", ifi_type=65534))
    added = Msg(
        event="RTM_NEWADDR",
        index=4,
        address="100.64.3.1",
        local="100.64.3.2",
        family=socket.AF_INET,
    )
    assert table._translate(added) == [LinkChanged(4, "ppp0", True, True, True, "100.64.3.2")]


def test_point_to_point_ipv6_address_is_the_local_one_not_the_peer() -> None:
    # `ip addr add 2001:db8:3::2 peer 2001:db8:3::1 dev ppp0`: IFA_ADDRESS is the peer's.
    table = NetlinkRouteTable()
    table._translate(link_msg(index=4, ifname="ppp0", ifi_type=65534))
    v6 = {"event": "RTM_NEWADDR", "index": 4, "family": socket.AF_INET6, "scope": 0}
    peer = Msg(v6, address="2001:db8:3::1", local="2001:db8:3::2", flags=0x80)
    (added,) = table._translate(peer)
    assert isinstance(added, LinkChanged)
    assert added.address6 == "2001:db8:3::2"
    (removed,) = table._translate(Msg(peer, event="RTM_DELADDR"))
    assert isinstance(removed, LinkChanged)
    assert removed.address6 is None


def rtnetlink_message(kind: int, dst_len: int, byteorder: str) -> bytes:
    """An nlmsghdr (host byte order) followed by the first bytes of an rtmsg/ifinfomsg."""
    order = "<" if byteorder == "little" else ">"
    header = struct.pack(f"{order}IHHII", 36, kind, 0, 0, 0)
    return header + bytes([socket.AF_INET, dst_len, 0, 0, 254, 16, 0, 1]) + b"\0" * 12


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize(
    ("kind", "dst_len", "kept"),
    [
        (RTM_NEWROUTE, 0, True),
        (RTM_DELROUTE, 0, True),
        (RTM_NEWROUTE, 32, False),
        (RTM_DELROUTE, 15, False),
        (16, 0, True),  # RTM_NEWLINK
        (17, 3, True),  # RTM_DELLINK (whatever follows its header)
        (20, 24, True),  # RTM_NEWADDR
    ],
)
def test_monitor_filter_drops_only_non_default_routes(
    byteorder: str, kind: int, dst_len: int, kept: bool
) -> None:
    verdict = run_bpf(monitor_filter(byteorder), rtnetlink_message(kind, dst_len, byteorder))
    assert (verdict != 0) is kept
