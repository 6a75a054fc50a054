"""The flows adapter on the real kernel, in a lab's daemon namespace: which conntrack
entries it deletes when traffic leaves wan1 (its route withdrawn, as pingu does), and
that it gets through a large table within its time bound. Entries are made directly
through ctnetlink, as `conntrack -I` makes them, so that each case is exactly set up."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from pingu.adapters import ctnetlink
from pingu.adapters import rawnetlink as nl
from pingu.adapters.ctnetlink import Ctnetlink, Entry
from pingu.adapters.flows import KernelFlows
from pingu.adapters.rawnetlink import messages
from pingu.domain.commands import EndFlows
from pingu.domain.model import Family
from pingu.lab import Lab
from tests.netns.conftest import LabFactory, NamespaceLoop

pytestmark = pytest.mark.netns

WAN1, WAN2 = "100.64.1.2", "100.64.2.2"
TARGET, PINNED = "203.0.113.10", "203.0.113.11"  # PINNED: a host route through wan1
MANY = 20_000
IPCTNL_MSG_CT_NEW, CTA_TIMEOUT = 0, 7
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
TCP_ESTABLISHED, TCP_TIME_WAIT = 3, 7
BATCH = 200


def _tuple(src: str, dst: str, proto: int, sport: int, dport: int) -> bytes:
    nla, nested = nl.attribute, nl.NLA_F_NESTED
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    v4 = family == socket.AF_INET
    ip = nla(
        ctnetlink.CTA_IP_V4_SRC if v4 else ctnetlink.CTA_IP_V6_SRC, socket.inet_pton(family, src)
    )
    ip += nla(
        ctnetlink.CTA_IP_V4_DST if v4 else ctnetlink.CTA_IP_V6_DST, socket.inet_pton(family, dst)
    )
    ports = nla(ctnetlink.CTA_PROTO_NUM, bytes([proto]))
    ports += nla(ctnetlink.CTA_PROTO_SRC_PORT, struct.pack(">H", sport))
    ports += nla(ctnetlink.CTA_PROTO_DST_PORT, struct.pack(">H", dport))
    return nla(ctnetlink.CTA_TUPLE_IP | nested, ip) + nla(ctnetlink.CTA_TUPLE_PROTO | nested, ports)


def create_request(
    seq: int, src: str, dst: str, sport: int, *, answered_to: str | None = None, tcp: int = 0
) -> bytes:
    """A new entry of a flow from src:sport to dst:4000, answered to ``answered_to`` (the
    address it was NATed to; default ``src``: not NATed), UDP, or TCP in state ``tcp``."""
    nla, nested = nl.attribute, nl.NLA_F_NESTED
    proto = socket.IPPROTO_TCP if tcp else socket.IPPROTO_UDP
    body = nla(ctnetlink.CTA_TUPLE_ORIG | nested, _tuple(src, dst, proto, sport, 4000))
    reply = _tuple(dst, answered_to or src, proto, 4000, sport)
    body += nla(ctnetlink.CTA_TUPLE_REPLY | nested, reply)
    body += nla(CTA_TIMEOUT, struct.pack(">I", 600))
    if tcp:
        state = nla(ctnetlink.CTA_PROTOINFO_TCP_STATE, bytes([tcp]))
        info = nla(ctnetlink.CTA_PROTOINFO_TCP | nested, state)
        body += nla(ctnetlink.CTA_PROTOINFO | nested, info)
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    flags = nl.NLM_F_REQUEST | nl.NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    return ctnetlink._message(IPCTNL_MSG_CT_NEW, flags, seq, family, body)


async def create(requests: list[bytes]) -> None:
    """Send the requests in batches on a socket of the running loop's namespace."""
    with Ctnetlink() as ct:
        for start in range(0, len(requests), BATCH):
            batch = requests[start : start + BATCH]
            waiting = {struct.unpack_from("=IHHII", r)[3] for r in batch}
            ct._sock.send(b"".join(batch))
            while waiting:
                for kind, seq, payload in messages(ct._sock.recv(1 << 20)):
                    if kind == nl.NLMSG_ERROR and seq in waiting:
                        waiting.discard(seq)
                        (code,) = struct.unpack_from("=i", payload)
                        assert code == 0, f"creating an entry: errno {-code}"


async def entries() -> list[Entry]:
    with Ctnetlink() as ct:
        return ct.every(socket.AF_INET, 10 * MANY) + ct.every(socket.AF_INET6, 10 * MANY)


@pytest.fixture
def left_wan1(lab_factory: LabFactory) -> Iterator[tuple[Lab, NamespaceLoop]]:
    """wan1 and wan2 with their leases; traffic has just left wan1 (its route withdrawn)
    but PINNED is routed through it on purpose. Conntrack is on (a NAT table)."""
    lab = lab_factory(["wan1", "wan2"], targets=[TARGET, PINNED])
    lab.dhcp_add("wan1", metric=100)
    lab.dhcp_add("wan2", metric=200)
    lab.ra_add("wan1", metric=1024)
    lab.ra_add("wan2", metric=1025)
    lab.run("daemon", ["ip", "route", "add", f"{PINNED}/32", "via", lab.gateway("wan1")])
    for family in ("ip", "ip6"):
        lab.run("daemon", ["nft", "add", "table", family, "t"])
        chain = f"add chain {family} t c {{ type nat hook postrouting priority 100; }}"
        lab.run("daemon", ["nft", *chain.split()])
    lab.dhcp_withdraw("wan1")
    lab.ra_withdraw("wan1")
    with NamespaceLoop(lab.daemon_ns) as loop:
        yield lab, loop


def left(lab: Lab, family: Family = Family.IPV4) -> EndFlows:
    address = WAN1 if family is Family.IPV4 else lab.local_address6("wan1")
    return EndFlows("wan1", family, lab.ifindex("wan1"), (address,), True, True, "wan2")


def test_only_live_flows_that_now_leave_by_another_uplink_are_deleted(
    left_wan1: tuple[Lab, NamespaceLoop],
) -> None:
    lab, loop = left_wan1
    lan = "100.100.1.2"
    loop.run(
        create(
            [
                create_request(1, WAN1, TARGET, 1001),  # the box's own: moved to wan2
                create_request(2, lan, TARGET, 1002, answered_to=WAN1),  # NATed: moved
                create_request(3, lan, TARGET, 1003, answered_to=WAN1, tcp=TCP_ESTABLISHED),
                create_request(4, lan, TARGET, 1004, answered_to=WAN1, tcp=TCP_TIME_WAIT),
                create_request(5, WAN1, PINNED, 1005),  # still through wan1: untouched
                create_request(6, lan, PINNED, 1006, answered_to=WAN1),  # idem, NATed
                create_request(7, lan, TARGET, 1007, answered_to=WAN2),  # wan2's
            ]
        )
    )
    ended = loop.run(KernelFlows().end(left(lab)))
    assert (ended.conntrack, ended.error) == (3, None)
    assert sorted(e.sport or 0 for e in loop.run(entries())) == [1004, 1005, 1006, 1007]


def test_ipv6_entries_of_the_address_are_deleted_too(left_wan1: tuple[Lab, NamespaceLoop]) -> None:
    lab, loop = left_wan1
    wan1, wan2 = lab.local_address6("wan1"), lab.local_address6("wan2")
    target, lan = lab.targets6[0], "2001:db8:100::2"
    loop.run(
        create(
            [
                create_request(1, wan1, target, 2001),
                create_request(2, lan, target, 2002, answered_to=wan1),
                create_request(3, lan, target, 2003, answered_to=wan2),
            ]
        )
    )
    ended = loop.run(KernelFlows().end(left(lab, Family.IPV6)))
    assert (ended.conntrack, ended.error) == (2, None)
    assert [e.sport for e in loop.run(entries())] == [2003]


def test_an_entry_made_again_for_its_flow_meanwhile_is_not_deleted(
    left_wan1: tuple[Lab, NamespaceLoop],
) -> None:
    """The kernel drops a masqueraded entry whose packets leave by another interface and
    makes a new one for the same flow, NATed to the new uplink: a deletion asked for the
    old one must miss it."""
    _, loop = left_wan1
    lan = "100.100.1.2"
    loop.run(create([create_request(1, lan, TARGET, 3001, answered_to=WAN1)]))
    (old,) = loop.run(entries())

    async def replaced() -> int:
        with Ctnetlink() as ct:
            assert ct.delete([old]) == 1
        await create([create_request(2, lan, TARGET, 3001, answered_to=WAN2)])
        with Ctnetlink() as ct:
            return ct.delete([old])

    assert loop.run(replaced()) == 0
    (new,) = loop.run(entries())
    assert (new.src, new.sport, new.reply_dst) == (old.src, old.sport, WAN2)


def test_a_large_table_is_gone_through_within_the_adapter_s_bound(
    left_wan1: tuple[Lab, NamespaceLoop],
) -> None:
    """20,000 live flows of wan1's address: all deleted, none failed. Reading each entry
    with pyroute2 (0.6 ms each here) ran past the 10 s bound and deleted none."""
    lab, loop = left_wan1
    loop.run(create([create_request(n, WAN1, TARGET, 10_000 + n) for n in range(MANY)]))
    ended = loop.run(KernelFlows().end(left(lab)))
    assert (ended.conntrack, ended.error) == (MANY, None)
    assert not loop.run(entries())
