"""The lab's real address-configuration software on the real kernel: what dnsmasq, radvd,
dhcpcd, udhcpc and the kernel's RA handling put in the daemon namespace at start, renewal,
new gateway, lease loss and restart (the behaviour pingu coexists with, written down in
pingu/lab/clients.py), with the host's files untouched and no process left behind."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pingu.lab import (
    DhcpcdClient,
    DnsmasqServer,
    KernelRA,
    Lab,
    LabError,
    RadvdServer,
    UdhcpcClient,
    clients,
)
from pingu.lab.clients import Program, group_members
from tests.netns.conftest import LabFactory
from tests.netns.programs import Programs
from tests.netns.route_watch import DefaultRouteWatch

pytestmark = pytest.mark.netns

RTPROT_KERNEL, RTPROT_BOOT, RTPROT_RA, RTPROT_DHCP = 2, 3, 9, 16
INFINITE = 0xFFFFFFFF
NEW_GATEWAY = "100.64.1.254"
# dnsmasq's shortest lease (120 s), the clients' retries after it, and some slack.
LEASE_LOSS_TIMEOUT = 180.0

# What a client or server of the host could write if it escaped its sandbox.
HOST_PATHS = (
    "/etc/resolv.conf",
    "/etc/hostname",
    "/etc/hosts",
    "/var/lib/dhcpcd",
    "/var/lib/misc",
    "/var/lib/udhcpc",
    "/run/dhcpcd",
    "/run/udhcpc",
    "/run/radvd",
    "/run/radvd.pid",
    "/run/dnsmasq",
    "/run/resolvconf",
    "/run/chrony-dhcp",
    "/run/systemd/timesyncd.conf.d",
    "/run/mount",  # libmount's record of mounts (utab)
)
SANDBOXED_MOUNT_POINTS = {"/run", "/var/lib", "/etc/resolv.conf", "/dev/log"}


@pytest.fixture(scope="module", autouse=True)
def _programs_installed() -> None:
    missing = clients.missing_programs()
    if missing:
        reason = "the lab's DHCP/RA software is not installed: " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; scripts/test-all installs it", pytrace=False)
        pytest.skip(f"{reason}; run scripts/test-all (or apt-get install them)")


def _snapshot(path: str) -> Any:
    if not os.path.lexists(path):
        return None
    if os.path.isdir(path) and not os.path.islink(path):
        entries = []
        for root, dirs, files in os.walk(path):
            for name in sorted(dirs + files):
                full = os.path.join(root, name)
                stat = os.lstat(full)
                entries.append((os.path.relpath(full, path), stat.st_mtime_ns, stat.st_size))
        return ("dir", os.stat(path).st_mtime_ns, sorted(entries))
    stat = os.stat(path)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return ("file", stat.st_mtime_ns, stat.st_mode, digest)


def _host_mounts() -> list[str]:
    """This (the host's) mount namespace's mounts on the paths the sandbox covers."""
    with open("/proc/self/mountinfo") as info:
        return sorted(line for line in info if line.split()[4] in SANDBOXED_MOUNT_POINTS)


@pytest.fixture(autouse=True)
def host_untouched() -> Iterator[None]:
    """Every test: the host's resolver file, lease and run directories, hostname and
    mounts are exactly as before (content and mtime)."""
    before = {p: _snapshot(p) for p in HOST_PATHS}
    name, mounts = socket.gethostname(), _host_mounts()
    yield
    after = {p: _snapshot(p) for p in HOST_PATHS}
    assert {p for p in HOST_PATHS if before[p] != after[p]} == set()
    assert socket.gethostname() == name
    assert _host_mounts() == mounts


@pytest.fixture
def programs(lab: Lab) -> Iterator[Programs]:
    running = Programs()
    try:
        yield running
    finally:
        running.close()
    # Every process of theirs (dhcpcd's proxies, radvd's privsep child, a script) ran in
    # one of the lab's namespaces: none may be left there but the lab's own helpers.
    assert _strays(lab) == {}


def _strays(lab: Lab) -> dict[str, set[int]]:
    own = set(lab.process_ids())
    left = {ns: _netns_pids(ns) - own for ns in lab.namespaces}
    return {ns: pids for ns, pids in left.items() if pids}


@pytest.fixture
def lab(lab_factory: LabFactory) -> Lab:
    """Two ethernet uplinks (ifindex order: wan1, wan2), one target."""
    return lab_factory(["wan1", "wan2"])


def _netns_pids(ns: str) -> set[int]:
    done = subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True, check=True, timeout=10
    )
    return {int(p) for p in done.stdout.split()}


def _in_range(address: str, uplink_n: int) -> bool:
    ip = ipaddress.IPv4Interface(address)
    low, high = (ipaddress.IPv4Address(f"100.64.{uplink_n}.{i}") for i in (10, 200))
    return ip.network.prefixlen == 24 and low <= ip.ip <= high


def _address_info(lab: Lab, uplink: str, family: int) -> list[dict[str, Any]]:
    text = lab.run("daemon", ["ip", "-j", f"-{family}", "addr", "show", "dev", uplink]).stdout
    return [info for link in json.loads(text) for info in link["addr_info"]]


def _eui64(lab: Lab, uplink: str) -> str:
    """The interface identifier the kernel derives from the uplink's MAC (modified EUI-64)."""
    text = lab.run("daemon", ["ip", "-j", "link", "show", "dev", uplink]).stdout
    mac = [int(b, 16) for b in json.loads(text)[0]["address"].split(":")]
    eui = [mac[0] ^ 2, *mac[1:3], 0xFF, 0xFE, *mac[3:]]
    return ":".join(f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2))


def _changes_on(watch: DefaultRouteWatch, oif: int) -> list[tuple[str, str | None, bool]]:
    return [(event, seen.gateway, replaced) for event, seen, replaced in watch.changes
            if seen.oif == oif]  # fmt: skip


def _stop_by_itself(client: DhcpcdClient, wait_ready: Callable[[int], object]) -> None:
    """Stop dhcpcd with SIGTERM and assert it exited by itself. dhcpcd 9.4 now and then
    never acts on a SIGTERM that comes while it runs a hook (the log ends at "executing:
    ... RENEW"; upstream reports the same, NetworkConfiguration/dhcpcd#560 and #587): the
    lab then kills it, which shows nothing of what a stop does. Such a stop is redone
    once, from a fresh start (``wait_ready(log_offset)``: what must hold again first)."""
    status = client.stop()
    if status == -signal.SIGKILL:
        print("dhcpcd ignored SIGTERM (killed after the bound); once more:", client.log()[-2000:])
        offset = len(client.log())
        client.start()
        wait_ready(offset)
        status = client.stop()
    assert status == 0


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def _ra_received(lab: Lab, uplink: str) -> int:
    text = lab.run("daemon", ["cat", f"/proc/net/dev_snmp6/{uplink}"]).stdout
    counters = dict(line.split() for line in text.splitlines())
    return int(counters["Icmp6InRouterAdvertisements"])


# ---------------------------------------------------------------------- dnsmasq + dhcpcd


def test_dhcpcd_takes_a_lease_and_an_ra_from_dnsmasq(lab: Lab, programs: Programs) -> None:
    server = programs(DnsmasqServer(lab, "wan1", ra=True))
    client = programs(DhcpcdClient(lab, "wan1"))

    lease = client.wait_lease()
    assert _in_range(lease, 1)
    assert client.leases() == [lease]  # the lab's static 100.64.1.2 is gone
    v4 = client.wait_default_route(4)
    metric = 1000 + lab.ifindex("wan1")  # dhcpcd's default metric
    assert (v4.gateway, v4.proto, v4.metric, v4.prefsrc, v4.expires) == (
        "100.64.1.1",
        RTPROT_DHCP,
        metric,
        lease.split("/")[0],
        None,
    )
    subnet = [r for r in clients.routes(lab, 4, "wan1") if r.dst == "100.64.1.0/24"]
    assert [(r.proto, r.metric) for r in subnet] == [(RTPROT_DHCP, metric)]
    (info,) = [i for i in _address_info(lab, "wan1", 4) if i["local"] == lease.split("/")[0]]
    assert info["valid_life_time"] == server.lease_time  # dhcpcd gives the kernel its lease
    assert info.get("noprefixroute") is True

    v6 = client.wait_default_route(6)
    assert v6.gateway in clients.isp_link_locals(lab, "wan1")
    assert (v6.proto, v6.metric, v6.expires) == (RTPROT_RA, metric, None)
    slaac = client.wait_slaac_address()
    assert ipaddress.IPv6Interface(slaac).network == clients.ipv6_prefix(lab, "wan1")
    # RFC 7217 (dhcpcd's "slaac private"), not the kernel's address from the MAC:
    assert not slaac.split("/")[0].endswith(_eui64(lab, "wan1"))
    assert lab.run("daemon", ["sysctl", "-n", "net.ipv6.conf.wan1.accept_ra"]).stdout == "0\n"

    assert lease.split("/")[0] in server.leases.read_text()
    assert client.lease_file().exists()  # in its sandbox, not in the host's /var/lib


def test_dhcpcd_metric_option_and_two_uplinks(lab: Lab, programs: Programs) -> None:
    for uplink in ("wan1", "wan2"):
        programs(DnsmasqServer(lab, uplink, ra=True))
    first = programs(DhcpcdClient(lab, "wan1"))
    second = programs(DhcpcdClient(lab, "wan2", metric=345))
    assert first.wait_default_route(4).metric == 1000 + lab.ifindex("wan1")
    assert second.wait_default_route(4).metric == 345
    assert second.wait_default_route(6).metric == 345
    gateways = {(r.dev, r.gateway) for r in clients.default_routes(lab, 4)}
    assert gateways == {("wan1", "100.64.1.1"), ("wan2", "100.64.2.1")}


def test_dhcpcd_renewal_changes_nothing_and_puts_a_deleted_route_back(
    lab: Lab, programs: Programs
) -> None:
    programs(DnsmasqServer(lab, "wan1", ra=True))
    client = programs(DhcpcdClient(lab, "wan1"))
    client.wait_lease()
    route = client.wait_default_route(4)
    client.wait_default_route(6)
    oif = lab.ifindex("wan1")

    with DefaultRouteWatch(lab) as watch:
        offset = len(client.log())
        client.renew()
        client.wait_log("received SIGUSR1, renewing", 30, after=offset)
        client.wait_log("leased", 30, after=offset)
        watch.settle()
    assert _changes_on(watch, oif) == []

    # As pingu captures it: the route goes, dhcpcd puts it back at its next renewal.
    offset = len(client.log())
    lab.run("daemon", ["ip", "route", "del", "default", "dev", "wan1"])
    back = client.wait_default_route(4)
    assert (back.gateway, back.proto, back.metric) == (route.gateway, route.proto, route.metric)
    since = client.log()[offset:]
    assert 0 <= since.index("leased") < since.index("adding default route via 100.64.1.1")

    offset = len(client.log())
    lab.run("daemon", ["ip", "-6", "route", "del", "default", "dev", "wan1"])
    assert client.wait_default_route(6).proto == RTPROT_RA
    since = client.log()[offset:]
    ra = since.index("Router Advertisement from")
    assert 0 <= ra < since.index("adding default route via fe80:")


def test_dhcpcd_swaps_the_route_for_a_new_gateway_by_delete_then_add(
    lab: Lab, programs: Programs
) -> None:
    server = programs(DnsmasqServer(lab, "wan1"))
    client = programs(DhcpcdClient(lab, "wan1", ipv6=False))
    lease = client.wait_lease()
    client.wait_default_route(4, gateway="100.64.1.1")

    with DefaultRouteWatch(lab) as watch:
        server.router = NEW_GATEWAY  # the ISP renumbers its router
        server.restart()
        client.renew()
        new = client.wait_default_route(4, gateway=NEW_GATEWAY)
        watch.settle()
    assert (new.proto, new.metric) == (RTPROT_DHCP, 1000 + lab.ifindex("wan1"))
    assert client.leases() == [lease]
    assert _changes_on(watch, lab.ifindex("wan1")) == [
        ("RTM_DELROUTE", "100.64.1.1", False),
        ("RTM_NEWROUTE", NEW_GATEWAY, False),
    ]
    assert "changing default route via 100.64.1.254" in client.log()


def test_dhcpcd_stop_keeps_its_routes_when_persistent_and_a_restart_keeps_the_lease(
    lab: Lab, programs: Programs
) -> None:
    programs(DnsmasqServer(lab, "wan1"))
    client = programs(DhcpcdClient(lab, "wan1", ipv6=False))
    lease = client.wait_lease()
    client.wait_default_route(4)

    with DefaultRouteWatch(lab) as watch:
        _stop_by_itself(client, lambda offset: client.wait_log("leased", 30, after=offset))
        assert client.leases() == [lease]  # Debian's "persistent": nothing deconfigured
        assert client.default_routes(4) != []
        offset = len(client.log())
        client.start()
        client.wait_log("leased", 30, after=offset)
        watch.settle()
    since = client.log()[offset:]
    assert f"rebinding lease of {lease.split('/')[0]}" in since  # its old lease file
    assert client.leases() == [lease]
    assert _changes_on(watch, lab.ifindex("wan1")) == []  # the route stayed throughout

    client.kill()  # a crash: the lease's address and route stay, as they were
    assert client.leases() == [lease]
    assert client.default_routes(4) != []
    offset = len(client.log())
    client.start()
    client.wait_log("leased", 30, after=offset)
    assert client.wait_lease() == lease


def test_dhcpcd_stop_without_persistent_deconfigures(lab: Lab, programs: Programs) -> None:
    programs(DnsmasqServer(lab, "wan1", ra=True))
    client = programs(DhcpcdClient(lab, "wan1", persistent=False))
    client.wait_lease()
    client.wait_default_route(4)
    client.wait_default_route(6)
    _stop_by_itself(client, lambda _: (client.wait_default_route(4), client.wait_default_route(6)))
    assert client.leases() == []
    assert client.default_routes(4) == []
    assert client.default_routes(6) == []
    assert client.slaac_addresses() == []


def test_dhcpcd_turns_the_kernels_ra_handling_off_itself(lab: Lab, programs: Programs) -> None:
    def accept_ra() -> str:
        return lab.run("daemon", ["sysctl", "-n", "net.ipv6.conf.wan1.accept_ra"]).stdout.strip()

    programs(DnsmasqServer(lab, "wan1"))  # no RA on the link: the kernel learns nothing
    assert accept_ra() == "1"
    client = programs(DhcpcdClient(lab, "wan1", persistent=False, kernel_ra_off_first=False))
    _wait_until(lambda: accept_ra() == "0", 30, "dhcpcd to set accept_ra 0")
    client.wait_lease()
    client.stop()
    assert accept_ra() == "0"  # dhcpcd does not give it back, even deconfiguring


def test_dhcpcd_takes_ras_on_a_box_that_forwards(lab: Lab, programs: Programs) -> None:
    lab.run("daemon", ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])  # a router
    programs(DnsmasqServer(lab, "wan1", ra=True))
    client = programs(DhcpcdClient(lab, "wan1"))
    route = client.wait_default_route(6)  # the kernel, with accept_ra 1, would not
    assert (route.proto, route.expires) == (RTPROT_RA, None)
    assert client.wait_slaac_address()


# ---------------------------------------------------------------------- dnsmasq + udhcpc


def test_udhcpc_takes_a_lease_with_a_proto_boot_route(lab: Lab, programs: Programs) -> None:
    server = programs(DnsmasqServer(lab, "wan1"))
    client = programs(UdhcpcClient(lab, "wan1"))
    lease = client.wait_lease()
    assert _in_range(lease, 1)
    assert client.leases() == [lease]
    route = client.wait_default_route(4)
    assert (route.gateway, route.proto, route.metric, route.prefsrc) == (
        "100.64.1.1",
        RTPROT_BOOT,
        0,
        None,
    )
    subnet = [r for r in clients.routes(lab, 4, "wan1") if r.dst == "100.64.1.0/24"]
    assert [(r.proto, r.metric) for r in subnet] == [(RTPROT_KERNEL, 0)]
    (info,) = [i for i in _address_info(lab, "wan1", 4) if i["local"] == lease.split("/")[0]]
    assert info["valid_life_time"] == INFINITE  # ifconfig: the kernel never expires it
    assert lease.split("/")[0] in server.leases.read_text()
    # Debian's script rewrote resolv.conf: the sandbox's copy, not the host's.
    assert client.sandbox.resolv_conf.read_text() != Path("/etc/resolv.conf").read_text()


def test_udhcpc_renewal_keeps_a_present_route_and_puts_a_deleted_one_back(
    lab: Lab, programs: Programs
) -> None:
    programs(DnsmasqServer(lab, "wan1"))
    client = programs(UdhcpcClient(lab, "wan1"))
    client.wait_lease()
    client.wait_default_route(4)
    oif = lab.ifindex("wan1")

    with DefaultRouteWatch(lab) as watch:
        offset = len(client.log())
        client.renew()
        client.wait_log("obtained", 30, after=offset)
        client.wait_log("File exists", 30, after=offset)  # its `ip route add` of the same
        watch.settle()
    assert _changes_on(watch, oif) == []

    lab.run("daemon", ["ip", "route", "del", "default", "dev", "wan1"])
    with DefaultRouteWatch(lab) as watch:
        client.renew()
        back = client.wait_default_route(4)
        watch.settle()
    assert (back.gateway, back.proto, back.metric) == ("100.64.1.1", RTPROT_BOOT, 0)
    assert _changes_on(watch, oif) == [("RTM_NEWROUTE", "100.64.1.1", False)]


def test_udhcpc_swaps_the_route_for_a_new_gateway_by_flush_then_add(
    lab: Lab, programs: Programs
) -> None:
    server = programs(DnsmasqServer(lab, "wan1"))
    client = programs(UdhcpcClient(lab, "wan1"))
    client.wait_lease()
    client.wait_default_route(4, gateway="100.64.1.1")
    with DefaultRouteWatch(lab) as watch:
        server.router = NEW_GATEWAY
        server.restart()
        client.renew()
        new = client.wait_default_route(4, gateway=NEW_GATEWAY)
        watch.settle()
    assert (new.proto, new.metric) == (RTPROT_BOOT, 0)
    assert _changes_on(watch, lab.ifindex("wan1")) == [
        ("RTM_DELROUTE", "100.64.1.1", False),
        ("RTM_NEWROUTE", NEW_GATEWAY, False),
    ]
    assert not all(watch.tables())  # a moment without any default route


def test_a_second_udhcpc_uplink_gets_no_default_route_while_the_first_has_one(
    lab: Lab, programs: Programs
) -> None:
    for uplink in ("wan1", "wan2"):
        programs(DnsmasqServer(lab, uplink))
    first = programs(UdhcpcClient(lab, "wan1"))
    first.wait_default_route(4)
    second = programs(UdhcpcClient(lab, "wan2"))
    second.wait_lease()
    second.wait_log("File exists", 30)  # same prefix, same metric 0: the kernel refuses
    assert [r.dev for r in clients.default_routes(lab, 4)] == ["wan1"]

    lab.run("daemon", ["ip", "route", "del", "default", "dev", "wan1"])  # pingu captures it
    second.renew()
    assert second.wait_default_route(4).gateway == "100.64.2.1"


def test_udhcpc_stop_releases_and_a_restart_gets_the_same_address(
    lab: Lab, programs: Programs
) -> None:
    server = programs(DnsmasqServer(lab, "wan1"))
    client = programs(UdhcpcClient(lab, "wan1"))
    lease = client.wait_lease()
    client.wait_default_route(4)
    with DefaultRouteWatch(lab) as watch:
        client.stop()  # -R: DHCPRELEASE, then the script's deconfig
        watch.settle()
    assert "sending release" in client.log()
    server.wait_log("DHCPRELEASE", 30)
    assert client.leases() == []
    assert clients.routes(lab, 4, "wan1") == []
    # The route went with the flushed address: the kernel said nothing of it.
    assert _changes_on(watch, lab.ifindex("wan1")) == []

    client.start()
    assert client.wait_lease() == lease  # dnsmasq knows the client
    assert client.wait_default_route(4).gateway == "100.64.1.1"

    client.kill()
    assert client.leases() == [lease]
    assert client.default_routes(4) != []


def test_udhcpc_without_release_leaves_its_lease_at_stop(lab: Lab, programs: Programs) -> None:
    programs(DnsmasqServer(lab, "wan1"))
    client = programs(UdhcpcClient(lab, "wan1", release_on_stop=False))
    lease = client.wait_lease()
    client.wait_default_route(4)
    client.stop()
    assert "sending release" not in client.log()
    assert client.leases() == [lease]
    assert client.default_routes(4) != []


# ---------------------------------------------------------------------- lease loss


def test_a_lost_lease_takes_the_address_and_routes_away(lab: Lab, programs: Programs) -> None:
    """Both servers go; the leases (dnsmasq's shortest: 120 s) run out unrenewed."""
    servers = [programs(DnsmasqServer(lab, u)) for u in ("wan1", "wan2")]
    dhcpcd = programs(DhcpcdClient(lab, "wan1", ipv6=False))
    udhcpc = programs(UdhcpcClient(lab, "wan2"))
    for client in (dhcpcd, udhcpc):
        client.wait_lease()
        client.wait_default_route(4)
    for server in servers:
        server.stop()

    dhcpcd.wait_no_lease(LEASE_LOSS_TIMEOUT)
    udhcpc.wait_no_lease(LEASE_LOSS_TIMEOUT)
    assert dhcpcd.running
    assert udhcpc.running
    assert clients.routes(lab, 4, "wan1") == []
    assert clients.routes(lab, 4, "wan2") == []
    # dhcpcd gave the kernel the lease as the address's lifetime: whichever of the two
    # times out first removes the address ("DHCP lease expired", or "pid 0 deleted IP
    # address"); either way dhcpcd deletes its routes and runs its EXPIRE hook.
    assert "dhcpcd-run-hooks EXPIRE" in dhcpcd.log()
    assert "lease lost" in udhcpc.log()


# ---------------------------------------------------------------------- radvd + the kernel


def test_the_kernel_takes_an_expiring_route_from_radvd(lab: Lab, programs: Programs) -> None:
    radvd = programs(RadvdServer(lab, "wan1", router_lifetime=30))
    kernel = programs.kernel(KernelRA(lab, "wan1"))
    route = kernel.wait_default_route(6)
    assert route.gateway == clients.ISP_LINK_LOCAL  # radvd's AdvRASrcAddress
    assert (route.proto, route.metric) == (RTPROT_RA, 1024)
    assert route.expires is not None
    assert 0 < route.expires <= radvd.router_lifetime
    slaac = kernel.wait_slaac_address()
    assert slaac.split("/")[0].endswith(_eui64(lab, "wan1"))
    prefix = [r for r in clients.routes(lab, 6, "wan1") if r.dst == "2001:db8:1::/64"]
    assert [(r.proto, r.metric, r.expires is not None) for r in prefix] == [
        (RTPROT_KERNEL, 256, True)
    ]

    # Deleted (pingu captures it): the next RA puts it back.
    before = _ra_received(lab, "wan1")
    lab.run("daemon", ["ip", "-6", "route", "del", "default", "dev", "wan1"])
    back = kernel.wait_default_route(6)
    assert _ra_received(lab, "wan1") > before
    assert (back.gateway, back.proto, back.metric) == (route.gateway, RTPROT_RA, 1024)
    assert back.expires is not None


def test_a_router_lifetime_of_0_removes_the_kernel_route(lab: Lab, programs: Programs) -> None:
    radvd = programs(RadvdServer(lab, "wan1"))
    kernel = programs.kernel(KernelRA(lab, "wan1"))
    kernel.wait_default_route(6)
    radvd.set_router_lifetime(0)  # reloaded by SIGHUP: it RAs at once
    kernel.wait_no_default_route(6, 30)
    assert kernel.slaac_addresses() != []  # the prefix is still valid
    radvd.set_router_lifetime(30)
    kernel.wait_default_route(6)

    radvd.stop()  # its last RA says lifetime 0
    assert "sending stop adverts" in radvd.log()
    kernel.wait_no_default_route(6, 30)


def test_accept_ra_1_ignores_ras_when_forwarding_and_2_takes_them(
    lab: Lab, programs: Programs
) -> None:
    lab.run("daemon", ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])
    programs(RadvdServer(lab, "wan1"))
    kernel = programs.kernel(KernelRA(lab, "wan1", accept_ra=1))
    before = _ra_received(lab, "wan1")
    _wait_until(lambda: _ra_received(lab, "wan1") > before, 30, "an RA on wan1")
    assert kernel.default_routes(6) == []  # received, and ignored

    kernel.accept_ra = 2
    kernel.restart()
    assert kernel.wait_default_route(6).proto == RTPROT_RA


# ---------------------------------------------------------------------- the harness itself


def test_the_sandbox_keeps_writes_off_the_host(lab: Lab, tmp_path: Path) -> None:
    sandbox = clients.Sandbox(tmp_path / "root")
    script = (
        "echo private > /etc/resolv.conf && mkdir -p /run/dhcpcd /var/lib/dhcpcd"
        " && touch /run/dhcpcd/pid /var/lib/dhcpcd/wan1.lease && hostname sandboxed"
        " && ls /run"
    )
    argv = sandbox.argv(lab.daemon_ns, ["sh", "-c", script])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True)
    assert done.stdout.split() == ["dhcpcd"]  # its /run is its own, empty at first
    assert sandbox.resolv_conf.read_text() == "private\n"
    assert sandbox.path("/run/dhcpcd/pid").exists()
    assert sandbox.path("/var/lib/dhcpcd/wan1.lease").exists()


class _Shell(Program):
    """A stand-in program that never gets ready: it exits, or it hangs."""

    program = "sh"

    def __init__(self, lab: Lab, script: str) -> None:
        super().__init__(lab, lab.daemon_ns, "shell")
        self.script = script

    def _argv(self) -> list[str]:
        return ["sh", "-c", self.script]

    def _ready(self) -> bool:
        return False


def test_a_program_that_exits_at_start_fails_with_its_log(lab: Lab, programs: Programs) -> None:
    broken = _Shell(lab, "echo 'no such option'; exit 3")
    with pytest.raises(LabError, match=r"shell exited \(3\)") as failed:
        programs(broken)
    assert "no such option" in str(failed.value)


def test_a_program_never_ready_is_killed_after_the_bound(lab: Lab) -> None:
    hung = _Shell(lab, "sleep 60 & wait")  # a child in its group too
    with pytest.raises(LabError, match=r"timed out after 0\.5 s"):
        hung.start(timeout=0.5)
    assert not hung.running
    assert [p for pid in hung.pids for p in group_members(pid)] == []
    assert _strays(lab) == {}
    hung.close()


def test_values_out_of_the_programs_ranges_are_refused(lab: Lab) -> None:
    made = set(Path(tempfile.gettempdir()).glob(f"{lab.prefix}-*"))
    with pytest.raises(ValueError, match="max_interval"):
        RadvdServer(lab, "wan1", min_interval=4, max_interval=4)
    with pytest.raises(ValueError, match="router lifetime 2"):
        RadvdServer(lab, "wan1", router_lifetime=2)
    with pytest.raises(ValueError, match="no lease shorter than 120 s"):
        DnsmasqServer(lab, "wan1", lease_time=30)
    with pytest.raises(ValueError, match=r"must lie within \.3-\.254"):
        DnsmasqServer(lab, "wan1", first=2)  # .2 is the lab's static address
    with pytest.raises(ValueError, match=r"must be in 100\.64\.1\.0/24"):
        DnsmasqServer(lab, "wan1", router="100.64.2.1")
    assert set(Path(tempfile.gettempdir()).glob(f"{lab.prefix}-*")) == made  # nothing left


def test_a_missing_program_is_named_with_its_package() -> None:
    with pytest.raises(LabError, match=r"no-such-dhcpd \(Debian package no-such-dhcpd\)"):
        clients.require("dnsmasq", "no-such-dhcpd")
