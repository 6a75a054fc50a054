"""sock_diag messages as <linux/inet_diag.h> lays them out (the netns tests run them)."""

from __future__ import annotations

import socket
import struct

from pingu.adapters.rawnetlink import messages
from pingu.adapters.sock_diag import (
    CONNECTED_STATES,
    INET_DIAG_BC_S_COND,
    SOCK_DESTROY,
    SOCK_DIAG_BY_FAMILY,
    SOCKID_SIZE,
    Connection,
    destroy_request,
    dump_request,
    local_matches,
    parse_connection,
    source_filter,
)

LISTEN, TIME_WAIT, CLOSE = 10, 6, 7


def test_a_dump_asks_for_tcp_connections_in_traffic_states_with_a_source_filter() -> None:
    request = dump_request(socket.AF_INET, "100.64.1.2", seq=7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", request)
    assert (length, kind, seq) == (len(request), SOCK_DIAG_BY_FAMILY, 7)
    assert flags == 0x1 | 0x300  # a request, a dump
    family, protocol, ext, states = struct.unpack_from("=BBBxI", request, 16)
    assert (family, protocol, ext) == (socket.AF_INET, socket.IPPROTO_TCP, 0)
    assert states == CONNECTED_STATES
    assert not states & (1 << LISTEN | 1 << TIME_WAIT | 1 << CLOSE)
    attribute = request[16 + 8 + SOCKID_SIZE :]
    size, kind = struct.unpack_from("=HH", attribute)
    assert (size, kind) == (4 + len(source_filter("100.64.1.2")), 1)  # INET_DIAG_REQ_BYTECODE


def test_the_source_filter_accepts_at_its_end_and_rejects_beyond_it() -> None:
    for address, family, packed in (
        ("100.64.1.2", socket.AF_INET, socket.inet_pton(socket.AF_INET, "100.64.1.2")),
        ("2001:db8:1::2", socket.AF_INET6, socket.inet_pton(socket.AF_INET6, "2001:db8:1::2")),
    ):
        code = source_filter(address)
        op, yes, no = struct.unpack_from("=BBH", code)
        assert (op, yes, no) == (INET_DIAG_BC_S_COND, len(code), len(code) + 4)
        cond_family, prefix, port = struct.unpack_from("=BBxxi", code, 4)
        assert (cond_family, prefix, port) == (family, len(packed) * 8, -1)
        assert code[12:] == packed


def test_a_dumped_connection_is_read_and_destroyed_by_the_identity_it_came_with() -> None:
    sockid = struct.pack(
        ">HH16s16s", 40000, 443, socket.inet_aton("100.64.1.2"), socket.inet_aton("203.0.113.10")
    ) + struct.pack("=I8s", 2, b"cookie!!")
    payload = struct.pack("=BBBB", socket.AF_INET, 1, 0, 0) + sockid + bytes(20)
    connection = parse_connection(payload)
    assert connection == Connection(
        socket.AF_INET, 1, "100.64.1.2", 40000, "203.0.113.10", 443, sockid
    )
    request = destroy_request(connection, seq=9)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", request)
    assert (length, kind, flags, seq) == (len(request), SOCK_DESTROY, 0x1 | 0x4, 9)
    assert request[16 + 8 :] == sockid
    assert parse_connection(payload[:30]) is None


def test_ipv4_mapped_sockets_count_as_their_ipv4_address() -> None:
    mapped = Connection(socket.AF_INET6, 1, "::ffff:100.64.1.2", 1, "::ffff:203.0.113.10", 2, b"")
    assert local_matches(mapped, "100.64.1.2")
    assert not local_matches(mapped, "100.64.2.2")


def test_messages_are_split_by_their_lengths_and_a_cut_one_ends_the_read() -> None:
    one = struct.pack("=IHHII", 20, 3, 0, 5, 0) + b"\0" * 4
    two = struct.pack("=IHHII", 18, 2, 0, 6, 0) + b"\1\2" + b"\0\0"  # padded to 4
    assert [(k, s, p) for k, s, p in messages(one + two)] == [(3, 5, b"\0" * 4), (2, 6, b"\1\2")]
    assert list(messages(one[:10])) == []
