"""RTM_GETROUTE messages as <linux/rtnetlink.h> lays them out (the netns tests run them),
and what the flows adapter makes of the answers."""

from __future__ import annotations

import ipaddress
import socket
import struct

from pingu.adapters import flows
from pingu.adapters.route_lookup import (
    RTA_DST,
    RTA_OIF,
    RTA_SRC,
    RTM_GETROUTE,
    lookup_request,
    output_interface,
    plain,
)
from pingu.adapters.sock_diag import SOCKID, Connection


def attributes(data: bytes) -> dict[int, bytes]:
    found, offset = {}, 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        found[kind] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def test_a_lookup_asks_for_one_destination_from_one_source_out_of_a_bound_interface() -> None:
    dst, src = ipaddress.ip_address("203.0.113.10"), ipaddress.ip_address("100.64.1.2")
    request = lookup_request(dst, src, 3, seq=4)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", request)
    assert (length, kind, flags, seq) == (len(request), RTM_GETROUTE, 0x1, 4)
    family, dst_len, src_len = struct.unpack_from("=BBB", request, 16)
    assert (family, dst_len, src_len) == (socket.AF_INET, 32, 32)
    found = attributes(request[16 + 12 :])
    assert found == {RTA_DST: dst.packed, RTA_SRC: src.packed, RTA_OIF: struct.pack("=I", 3)}


def test_an_ipv6_lookup_without_source_or_interface_names_only_the_destination() -> None:
    dst = ipaddress.ip_address("2001:db8:ffff::10")
    request = lookup_request(dst, None, None, seq=1)
    family, dst_len, src_len = struct.unpack_from("=BBB", request, 16)
    assert (family, dst_len, src_len) == (socket.AF_INET6, 128, 0)
    assert attributes(request[16 + 12 :]) == {RTA_DST: dst.packed}


def test_the_answer_gives_its_output_interface() -> None:
    rtmsg = struct.pack("=BBBBBBBBI", socket.AF_INET, 32, 0, 0, 254, 16, 0, 1, 0)
    table = struct.pack("=HHI", 8, 15, 254)
    oif = struct.pack("=HHI", 8, RTA_OIF, 7)
    assert output_interface(rtmsg + table + oif) == 7
    assert output_interface(rtmsg + table) is None


def test_ipv4_mapped_addresses_are_routed_as_ipv4() -> None:
    assert plain("::ffff:203.0.113.10") == ipaddress.ip_address("203.0.113.10")
    assert plain("2001:db8::1") == ipaddress.ip_address("2001:db8::1")


def test_a_connection_s_bound_interface_is_read_from_its_identity() -> None:
    head = SOCKID.pack(1, 2, bytes(16), bytes(16))
    bound = Connection(2, 1, "100.64.1.2", 1, "203.0.113.10", 2, head + struct.pack("=I8s", 5, b""))
    assert bound.interface == 5
    assert Connection(2, 1, "100.64.1.2", 1, "203.0.113.10", 2, b"").interface == 0


def test_without_the_uplink_s_interface_every_flow_counts_as_broken() -> None:
    ways: list[flows.Way] = [("203.0.113.10", "100.64.1.2", None), ("203.0.113.11", None, None)]
    assert flows._broken(None, ways) == [True, True]
    assert flows._broken(2, []) == []
