"""The lab's LAN side and traffic tools, without pingu: the LAN reaches the internet
NATed to the uplink in use, in both families; the ISPs drop what does not come from their
customer; closing the LAN and the tools removes all they added."""

from __future__ import annotations

import os
import sys

import pytest

from pingu.lab.lan import NAT_KINDS, NAT_TABLE, Lan, NatKind
from pingu.lab.traffic import Traffic
from tests.netns.conftest import LabFactory, namespaces_now

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("nat", NAT_KINDS)
def test_the_lan_reaches_the_internet_natted_to_the_uplink_in_use(
    lab_factory: LabFactory, nat: NatKind
) -> None:
    lab = lab_factory(["wan1", "wan2"])
    lab.dhcp_add("wan1", metric=100)
    lab.dhcp_add("wan2", metric=200)
    lab.ra_add("wan1", metric=1024)
    lab.ra_add("wan2", metric=1025)
    with Lan(lab, nat) as lan, Traffic(lab, lan, lifetime_s=60) as traffic:
        server = traffic.server()
        tunnel = traffic.udp_tunnel("tunnel")
        tunnel6 = traffic.udp_tunnel("tunnel6", to=lab.targets6[0], sport=51821)
        tcp = traffic.tcp_client("tcp", "lan")
        for tool in (tunnel, tcp):
            server.wait_from(tool, lab.local_address("wan1"))
        server.wait_from(tunnel6, lab.local_address6("wan1"))
        tunnel.wait("reply")
        assert lan.spoofed("wan1") == lan.spoofed("wan2") == 0
        entry = lan.flow(51820, 4000)
        assert entry is not None
        assert (entry.src, entry.reply_dst) == (lan.client_address, lab.local_address("wan1"))
        assert f"table ip {NAT_TABLE}" in lab.run("daemon", ["nft", "list", "tables"]).stdout


def test_an_isp_drops_what_does_not_come_from_its_customer(lab_factory: LabFactory) -> None:
    lab = lab_factory(["wan1", "wan2"])
    lab.dhcp_add("wan2", metric=200)
    with Lan(lab, "snat") as lan:
        # The box's wan1 address, sent out of wan2: BCP 38 at wan2's ISP.
        result = lab.ping("wan2", lab.targets[0], count=3, interval=0.05)
        assert result.received == 3  # its own address passes
        send = [sys.executable, "-c", SEND_FROM, lab.local_address("wan1"), lab.targets[0]]
        lab.run("daemon", send)
        assert lan.spoofed("wan2") >= 2
        assert lan.spoofed("wan1") == 0


def test_closing_the_lan_and_the_tools_removes_what_they_added(lab_factory: LabFactory) -> None:
    lab = lab_factory(["wan1", "wan2"])
    lab.dhcp_add("wan1", metric=100)
    with Lan(lab, "masquerade") as lan, Traffic(lab, lan, lifetime_s=60) as traffic:
        traffic.server()
        tunnel = traffic.udp_tunnel("tunnel")
        pids = [t.process.pid for t in traffic.tools]
        tunnel.wait("reply")
        client_ns = lan.client_ns
        assert client_ns in namespaces_now()
    assert client_ns not in namespaces_now()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)
    assert NAT_TABLE not in lab.run("daemon", ["nft", "list", "tables"]).stdout
    for uplink in lab.uplinks:
        assert "pingu_lab" not in lab.run(f"isp:{uplink}", ["nft", "list", "tables"]).stdout
    assert lab.run("daemon", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"


SEND_FROM = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind((sys.argv[1], 0))
    for _ in range(2):
        s.sendto(b"x", (sys.argv[2], 9))
"""


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] == "Z"
