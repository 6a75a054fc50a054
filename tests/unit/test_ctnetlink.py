"""ctnetlink messages as <linux/netfilter/nfnetlink_conntrack.h> lays them out (the netns
tests run them against the kernel)."""

from __future__ import annotations

import socket
import struct

import pytest

from pingu.adapters import ctnetlink as ct
from pingu.adapters import rawnetlink as nl
from pingu.adapters.ctnetlink import Entry, delete_request, dump_request, parse_entry
from pingu.adapters.rawnetlink import attribute as nla

NESTED = nl.NLA_F_NESTED


def attributes(data: bytes) -> list[tuple[int, bytes]]:
    return [(kind, payload) for kind, payload, _ in ct._attributes(data)]


def header(message: bytes) -> tuple[int, int, int, int]:
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", message)
    return length, kind, flags, seq


def test_a_dump_asks_the_kernel_for_the_entries_answered_to_an_ipv4_address() -> None:
    request = dump_request("100.64.1.2", seq=3)
    assert header(request) == (len(request), 1 << 8 | 1, 0x1 | 0x300, 3)
    assert struct.unpack_from("=BBH", request, 16) == (socket.AF_INET, 0, 0)
    (reply, reply_body), (filter_kind, filter_body) = attributes(request[20:])
    assert (reply, filter_kind) == (ct.CTA_TUPLE_REPLY, ct.CTA_FILTER)
    ((ip, ip_body),) = attributes(reply_body)
    assert ip == ct.CTA_TUPLE_IP
    assert attributes(ip_body) == [(ct.CTA_IP_V4_DST, socket.inet_aton("100.64.1.2"))]
    assert attributes(filter_body) == [(ct.CTA_FILTER_REPLY_FLAGS, struct.pack("=I", 1 << 1))]


def test_an_unfiltered_dump_names_only_its_family() -> None:
    request = dump_request(None, seq=1, family=socket.AF_INET6)
    assert len(request) == 20
    assert request[16] == socket.AF_INET6
    with pytest.raises(ValueError, match="family"):
        dump_request(None, seq=1)


def entry_message(*, state: int | None, proto: int = socket.IPPROTO_TCP) -> bytes:
    def ip_tuple(src: str, dst: str, sport: int, dport: int) -> bytes:
        ips = nla(ct.CTA_IP_V4_SRC, socket.inet_aton(src))
        ips += nla(ct.CTA_IP_V4_DST, socket.inet_aton(dst))
        ports = nla(ct.CTA_PROTO_NUM, bytes([proto]))
        ports += nla(ct.CTA_PROTO_SRC_PORT, struct.pack(">H", sport))
        ports += nla(ct.CTA_PROTO_DST_PORT, struct.pack(">H", dport))
        return nla(ct.CTA_TUPLE_IP | NESTED, ips) + nla(ct.CTA_TUPLE_PROTO | NESTED, ports)

    body = struct.pack("=BBH", socket.AF_INET, 0, 0)
    body += nla(ct.CTA_TUPLE_ORIG | NESTED, ip_tuple("100.100.1.2", "203.0.113.10", 5000, 443))
    body += nla(ct.CTA_TUPLE_REPLY | NESTED, ip_tuple("203.0.113.10", "100.64.1.2", 443, 5000))
    if state is not None:
        tcp = nla(ct.CTA_PROTOINFO_TCP | NESTED, nla(ct.CTA_PROTOINFO_TCP_STATE, bytes([state])))
        body += nla(ct.CTA_PROTOINFO | NESTED, tcp)
    body += nla(ct.CTA_ID, struct.pack(">I", 0xDEADBEEF))
    return body


def test_a_dumped_entry_is_read_and_deleted_by_its_reply_tuple_and_its_id() -> None:
    entry = parse_entry(entry_message(state=3))
    assert entry is not None
    assert (entry.src, entry.dst, entry.sport, entry.dport) == (
        "100.100.1.2",
        "203.0.113.10",
        5000,
        443,
    )
    assert (entry.proto, entry.reply_dst, entry.tcp_state, entry.id) == (
        6,
        "100.64.1.2",
        3,
        0xDEADBEEF,
    )
    assert not entry.finished
    request = delete_request(entry, seq=8)
    assert header(request) == (len(request), 1 << 8 | 2, 0x1 | 0x4, 8)
    kinds = [kind for kind, _ in attributes(request[20:])]
    assert kinds == [ct.CTA_TUPLE_REPLY, ct.CTA_ID]
    assert request[20 : 20 + len(entry.reply)] == entry.reply


@pytest.mark.parametrize(("state", "finished"), [(7, True), (8, True), (3, False), (5, False)])
def test_finished_tcp_connections_are_told_apart(state: int, finished: bool) -> None:
    entry = parse_entry(entry_message(state=state))
    assert entry is not None
    assert entry.finished is finished


def test_udp_entries_are_never_finished_and_a_message_without_tuples_is_none() -> None:
    entry = parse_entry(entry_message(state=None, proto=socket.IPPROTO_UDP))
    assert isinstance(entry, Entry)
    assert not entry.finished
    assert parse_entry(struct.pack("=BBH", socket.AF_INET, 0, 0)) is None
    assert parse_entry(b"\2") is None
