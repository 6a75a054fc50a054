"""The simulated network itself, on the real kernel: paths, impairments, DHCP and RA,
both families, teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest

from pingu.lab import Lab, LabError, Nexthop, Uplink
from tests.netns.conftest import LabFactory, leftovers, namespaces_now

pytestmark = pytest.mark.netns

T1, T2 = "203.0.113.10", "203.0.113.11"
T1_6, T2_6 = "2001:db8:ffff::10", "2001:db8:ffff::11"  # every lab's default IPv6 targets
RTPROT_BOOT, RTPROT_DHCP, RTPROT_RA = 3, 16, 9
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
POLL_TIMEOUT = 10.0


def lease_all(lab: Lab) -> None:
    lab.dhcp_add("wan1", metric=100)
    lab.dhcp_add("wan2", metric=200)
    lab.dhcp_add("ppp0", metric=300)


def advertise_all(lab: Lab) -> None:
    """IPv6 default routes on every uplink, as router advertisements would give them."""
    lab.ra_add("wan1")
    lab.ra_add("wan2", metric=1025)
    lab.ra_add("ppp0", metric=1026)


def addresses(lab: Lab, ns: str, dev: str) -> list[str]:
    """The IPv6 addresses of ``dev`` as `ip -br` writes them (``2001:db8:1::2/64``)."""
    line = lab.run(ns, ["ip", "-br", "-6", "addr", "show", "dev", dev]).stdout
    return line.split()[2:]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + POLL_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {POLL_TIMEOUT} s waiting for {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too; our own children are reaped by the lab.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_echoes_reach_every_target_through_every_uplink(lab: Lab, family: int) -> None:
    if family == 4:
        lease_all(lab)
        targets, local = (T1, T2), lab.local_address
    else:
        advertise_all(lab)
        targets, local = (T1_6, T2_6), lab.local_address6
    for uplink in lab.uplinks:
        for target in targets:
            result = lab.ping(uplink, target, count=2, interval=0.05)
            assert result.received == 2, (uplink, target, result)
    log = lab.responder_log()
    assert {(e.src, e.dst) for e in log} == {(local(u), t) for u in lab.uplinks for t in targets}
    assert len(log) == 12
    assert all(e.answered for e in log)


def test_the_uplinks_have_the_planned_addresses_and_kinds(lab: Lab) -> None:
    brief = lab.run("daemon", ["ip", "-o", "addr", "show", "dev", "ppp0"]).stdout
    assert "100.64.3.2 peer 100.64.3.1/32" in brief
    link = lab.run("daemon", ["ip", "-o", "link", "show", "dev", "ppp0"]).stdout
    assert "POINTOPOINT" in link
    assert "NOARP" in link
    assert "link/none" in link
    assert "link/ether" in lab.run("daemon", ["ip", "-o", "link", "show", "dev", "wan1"]).stdout
    assert lab.gateway("wan2") == "100.64.2.1"
    assert lab.run("internet", ["sysctl", "-n", "net.ipv4.icmp_echo_ignore_all"]).stdout == "1\n"


def test_carrier_down_takes_an_ethernet_uplink_off_the_line(lab: Lab) -> None:
    lease_all(lab)
    lab.carrier_down("wan1")
    assert not lab.carrier("wan1")
    isp_end = lab.run(lab.isp_ns("wan1"), ["ip", "-o", "link", "show", "dev", "cust"]).stdout
    assert "state DOWN" in isp_end
    assert lab.ping("wan1", count=1, timeout=0.3).received == 0
    assert lab.ping("wan2").received == 1
    lab.carrier_up("wan1")
    assert lab.carrier("wan1")
    assert lab.ping("wan1", timeout=2.0).received == 1


def test_carrier_down_takes_a_p2p_uplink_off_the_line(lab: Lab) -> None:
    lab.carrier_down("ppp0")
    assert not lab.carrier("ppp0")
    assert lab.ping("ppp0", count=1, timeout=0.3).received == 0
    lab.carrier_up("ppp0")
    assert lab.carrier("ppp0")
    assert lab.ping("ppp0").received == 1


@pytest.mark.parametrize("uplink", ["wan1", "ppp0"])
def test_an_upstream_cut_loses_the_echoes_before_the_targets(lab: Lab, uplink: str) -> None:
    lease_all(lab)
    lab.cut_upstream(uplink)
    assert lab.carrier(uplink)
    assert lab.ping(uplink, count=2, interval=0.05, timeout=0.3).received == 0
    assert lab.ping("wan2").received == 1
    assert {e.src for e in lab.responder_log()} == {lab.local_address("wan2")}
    lab.restore_upstream(uplink)
    assert lab.ping(uplink).received == 1


def test_a_20_percent_loss_drops_exactly_every_5th_echo(lab: Lab) -> None:
    lease_all(lab)
    lab.set_loss(T1, 0.2)
    result = lab.ping("wan2", T1, count=10, interval=0.02, timeout=0.5)
    assert result.sent == 10
    assert result.lost == 2
    assert sorted(set(range(1, 11)) - set(result.rtt_ms)) == [5, 10]
    log = lab.responder_log()
    assert [e.seq for e in log if not e.answered] == [5, 10]
    assert len(log) == 10
    assert lab.ping("wan2", T2, count=5, interval=0.02).received == 5  # only T1 is lossy


def test_a_delay_shows_in_the_round_trip_time(lab: Lab) -> None:
    lab.dhcp_add("wan1", metric=100)
    lab.set_delay(T2, 200)
    result = lab.ping("wan1", T2, count=2, interval=0.05, timeout=1.5)
    assert result.received == 2
    assert min(result.rtt_ms.values()) >= 200
    lab.set_delay(T2, 0)
    assert lab.ping("wan1", T2).received == 1


def test_dhcp_add_renew_withdraw_show_in_the_routes(lab: Lab) -> None:
    lab.dhcp_add("wan1", metric=100)
    lab.dhcp_add("ppp0", metric=300, proto="boot")
    defaults = {r.oif: r for r in lab.default_routes()}
    assert set(defaults) == {"wan1", "ppp0"}
    wan1, ppp0 = defaults["wan1"], defaults["ppp0"]
    assert (wan1.gateway, wan1.metric, wan1.proto, wan1.scope, wan1.table) == (
        "100.64.1.1",
        100,
        RTPROT_DHCP,
        RT_SCOPE_UNIVERSE,
        254,
    )
    assert (ppp0.gateway, ppp0.metric, ppp0.proto, ppp0.scope) == (
        None,
        300,
        RTPROT_BOOT,
        RT_SCOPE_LINK,
    )

    lab.dhcp_renew("wan1", "100.64.1.254")
    (renewed,) = [r for r in lab.default_routes() if r.oif == "wan1"]
    assert (renewed.gateway, renewed.metric, renewed.proto) == ("100.64.1.254", 100, RTPROT_DHCP)
    isp_addrs = lab.run("isp:wan1", ["ip", "-o", "addr", "show", "dev", "cust"]).stdout
    assert "100.64.1.254/24" in isp_addrs
    # The ISP answers on the new gateway: ARP for it resolves and echoes go through.
    assert lab.ping("wan1").received == 1
    neighbours = lab.run("daemon", ["ip", "neigh", "show", "dev", "wan1"]).stdout
    assert "100.64.1.254" in neighbours

    lab.dhcp_withdraw("wan1")
    lab.dhcp_withdraw("ppp0")
    assert lab.default_routes() == []
    with pytest.raises(LabError, match="no lease"):
        lab.dhcp_withdraw("wan1")


def test_renew_and_withdraw_tolerate_a_route_already_captured(lab: Lab) -> None:
    lab.dhcp_add("wan2", metric=200)
    lab.run("daemon", ["ip", "route", "del", "default", "dev", "wan2"])  # as pingu does
    lab.dhcp_renew("wan2", "100.64.2.9")
    assert [r.gateway for r in lab.default_routes()] == ["100.64.2.9"]
    lab.run("daemon", ["ip", "route", "del", "default", "dev", "wan2"])
    lab.dhcp_withdraw("wan2")
    assert lab.default_routes() == []


def test_a_redial_gives_the_uplink_a_new_ifindex(lab: Lab) -> None:
    lease_all(lab)
    before = {u: lab.ifindex(u) for u in ("wan1", "ppp0")}
    for uplink in ("wan1", "ppp0"):
        lab.delete_uplink(uplink)
        with pytest.raises(LabError):
            lab.ifindex(uplink)
        assert uplink not in {r.oif for r in lab.default_routes()}
        new_index = lab.recreate_uplink(uplink)
        assert new_index != before[uplink]
        assert lab.ifindex(uplink) == new_index
        assert lab.carrier(uplink)
    lab.dhcp_add("wan1", metric=100)
    assert lab.ping("wan1").received == 1
    assert lab.ping("ppp0").received == 1


def test_routes_lists_the_whole_table(lab: Lab) -> None:
    connected = {(r.dst, r.dst_len, r.oif) for r in lab.routes() if not r.is_default}
    assert ("100.64.1.0", 24, "wan1") in connected
    assert ("100.64.3.1", 32, "ppp0") in connected
    local = lab.routes(table=255)
    assert {r.table for r in local} == {255}
    assert any(r.dst == "100.64.1.2" for r in local)


def test_teardown_removes_namespaces_and_processes(lab_factory: LabFactory) -> None:
    with Lab(["wan1", Uplink("ppp0", "p2p")]) as lab:
        namespaces = lab.namespaces
        sleeper = lab.popen_in_daemon(["sleep", "60"])
        pids = lab.process_ids()
        assert len(pids) == 3  # relay, responder, sleeper
        assert set(namespaces) <= set(namespaces_now())
    assert not set(namespaces) & set(namespaces_now())
    assert sleeper.poll() is not None
    assert not [pid for pid in pids if alive(pid)]


@pytest.mark.parametrize(
    ("error", "uplink"),
    [(RuntimeError, Uplink("wan1")), (KeyboardInterrupt, Uplink("ppp0", "p2p"))],
)
def test_teardown_happens_on_an_exception_and_on_ctrl_c(
    error: type[BaseException], uplink: Uplink
) -> None:
    lab = Lab([uplink])
    pids: list[int] = []

    def fail_inside_the_lab() -> None:
        with lab:
            pids.extend(lab.process_ids())
            raise error("boom")

    with pytest.raises(error):
        fail_inside_the_lab()
    assert pids
    assert leftovers([lab.prefix]) == []
    assert not [pid for pid in pids if alive(pid)]


def test_a_failed_build_removes_what_it_made_and_nothing_else(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(LabError, match="File exists"):
        Lab(["wan1"], prefix=lab.prefix).__enter__()  # same names as a running lab
    assert set(lab.namespaces) <= set(namespaces_now())
    assert lab.ping("ppp0").received == 1

    def responder_fails(self: Lab) -> None:
        raise LabError("responder did not start")

    monkeypatch.setattr(Lab, "_start_responder", responder_fails)
    broken = Lab(["wan1", Uplink("ppp0", "p2p")])
    with pytest.raises(LabError, match="responder"), broken:
        pass
    assert leftovers([broken.prefix]) == []


def test_teardown_happens_on_sigterm() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from pingu.lab import Lab, Uplink
        with Lab([Uplink("ppp0", "p2p")]) as lab:
            print(lab.prefix, *lab.process_ids(), flush=True)
            time.sleep(30)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert proc.stdout is not None
        prefix, *pids = proc.stdout.readline().split()
        assert leftovers([prefix])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert leftovers([prefix]) == []
    deadline = time.monotonic() + 5
    while any(alive(int(p)) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(int(p))]


def test_only_documentation_addresses_are_accepted() -> None:
    with pytest.raises(ValueError, match="target"):
        Lab(["wan1"], targets=["8.8.8.8"])
    with pytest.raises(ValueError, match="interface name"):
        Lab(["a name with spaces"])
    with pytest.raises(ValueError, match="distinct"):
        Lab(["wan1", "wan1"])


# --------------------------------------------------------------------- IPv6


def test_the_uplinks_have_the_planned_ipv6_addresses(lab: Lab) -> None:
    assert addresses(lab, "daemon", "wan1")[0] == "2001:db8:1::2/64"
    assert addresses(lab, "daemon", "ppp0")[:3] == ["2001:db8:3::2", "peer", "2001:db8:3::1/128"]
    # The ISP's link-local is fe80::1 alone: whatever it says on the link comes from it.
    assert addresses(lab, "isp:wan1", "cust") == ["2001:db8:1::1/64", "fe80::1/64"]
    assert addresses(lab, "isp:ppp0", "cust") == [
        *("2001:db8:3::1", "peer", "2001:db8:3::2/128"),
        "fe80::1/64",
    ]
    assert addresses(lab, "isp:wan2", "transit")[0] == "2001:db8:f002::1/64"
    assert addresses(lab, "internet", "isp2")[0] == "2001:db8:f002::2/64"
    on_lo = addresses(lab, "internet", "lo")
    assert {f"{T1_6}/128", f"{T2_6}/128"} <= set(on_lo)
    assert (lab.local_address6("wan2"), lab.gateway6("wan2")) == ("2001:db8:2::2", "fe80::1")
    assert lab.gateway6_global("ppp0") == "2001:db8:3::1"
    assert lab.targets == (T1, T2)
    assert lab.targets6 == (T1_6, T2_6)
    assert lab.address6_flags("wan1") == frozenset({"nodad"})  # usable at once
    isp = lab.run("isp:wan1", ["sysctl", "-n", "net.ipv6.conf.all.forwarding"]).stdout
    assert isp == "1\n"
    internet = lab.run("internet", ["sysctl", "-n", "net.ipv6.icmp.echo_ignore_all"]).stdout
    assert internet == "1\n"


def test_the_daemon_has_no_ipv6_default_route_until_a_router_gives_one(lab: Lab) -> None:
    assert lab.default_routes(family=6) == []
    assert lab.ping("wan1", T1_6, timeout=0.3).received == 0  # no way out
    lab.ra_add("wan1")
    assert lab.ping("wan1", T1_6).received == 1


def test_ra_add_installs_what_the_kernel_installs_for_an_advertisement(lab: Lab) -> None:
    lab.dhcp_add("wan1", metric=100)
    with pytest.raises(LabError, match="must be in"):
        lab.ra_add("wan1", "2001:db8:9::1")  # not on wan1's link
    lab.ra_add("wan1")
    lab.ra_add("wan2", metric=1025, expires=0, options="pref high")
    lab.ra_add("ppp0", metric=1026)
    routes = {r.oif: r for r in lab.default_routes(family=6)}
    wan1, wan2, ppp0 = routes["wan1"], routes["wan2"], routes["ppp0"]
    assert (wan1.dst, wan1.dst_len, wan1.gateway, wan1.metric, wan1.proto, wan1.family) == (
        "::",
        0,
        "fe80::1",
        1024,
        RTPROT_RA,
        6,
    )
    assert wan1.expires is not None
    assert 1700 < wan1.expires <= 1800
    assert wan1.pref == "medium"
    assert (wan2.gateway, wan2.expires, wan2.pref) == ("fe80::1", None, "high")
    assert (ppp0.gateway, ppp0.metric) == (None, 1026)
    # The IPv4 view is what it was.
    assert [(r.oif, r.family) for r in lab.default_routes()] == [("wan1", 4)]
    with pytest.raises(LabError, match="already"):
        lab.ra_add("wan1")

    for uplink in ("wan1", "wan2", "ppp0"):
        lab.ra_withdraw(uplink)
    assert lab.default_routes(family=6) == []
    with pytest.raises(LabError, match="no RA route"):
        lab.ra_withdraw("wan1")
    assert [r.oif for r in lab.default_routes()] == ["wan1"]


@pytest.mark.parametrize("uplink", ["wan1", "ppp0"])
def test_an_ra_gateway_of_the_link_answers(lab: Lab, uplink: str) -> None:
    lab.ra_add(uplink, "fe80::2")  # a second router address, as a renumbered RA gives
    (route,) = lab.default_routes(family=6)
    assert (route.gateway, route.oif) == ("fe80::2", uplink)
    assert "fe80::2/64" in addresses(lab, f"isp:{uplink}", "cust")
    assert lab.ping(uplink, T1_6).received == 1


def test_an_upstream_cut_of_one_family_leaves_the_other(lab: Lab) -> None:
    lab.dhcp_add("wan1", metric=100)
    lab.ra_add("wan1")

    def through_wan1() -> tuple[int, int]:
        v4 = lab.ping("wan1", T1, timeout=0.3).received
        return v4, lab.ping("wan1", T1_6, timeout=0.3).received

    assert through_wan1() == (1, 1)
    lab.cut_upstream("wan1", family=6)
    assert through_wan1() == (1, 0)
    lab.restore_upstream("wan1", family=6)
    lab.cut_upstream("wan1", family=4)
    assert through_wan1() == (0, 1)
    lab.restore_upstream("wan1")
    assert through_wan1() == (1, 1)
    lab.cut_upstream("wan1")
    assert lab.carrier("wan1")
    assert through_wan1() == (0, 0)
    lab.restore_upstream("wan1")
    assert through_wan1() == (1, 1)
    assert {e.src for e in lab.responder_log()} == {"100.64.1.2", "2001:db8:1::2"}
    with pytest.raises(ValueError, match="family"):
        lab.cut_upstream("wan1", family=5)  # type: ignore[arg-type]


def test_the_responder_drops_and_delays_ipv6_echoes_as_ipv4_ones(lab: Lab) -> None:
    lab.ra_add("wan2")
    lab.set_loss("2001:DB8:FFFF::10", 0.2)  # any spelling of the address
    result = lab.ping("wan2", T1_6, count=10, interval=0.02, timeout=0.5)
    assert (result.sent, result.lost) == (10, 2)
    assert sorted(set(range(1, 11)) - set(result.rtt_ms)) == [5, 10]
    log = lab.responder_log(clear=True)
    assert [e.seq for e in log if not e.answered] == [5, 10]
    assert {(e.src, e.dst) for e in log} == {(lab.local_address6("wan2"), T1_6)}
    assert lab.ping("wan2", T2_6, count=5, interval=0.02).received == 5  # only T1_6 is lossy

    lab.set_delay(T2_6, 200)
    delayed = lab.ping("wan2", T2_6, count=2, interval=0.05, timeout=1.5)
    assert delayed.received == 2
    assert min(delayed.rtt_ms.values()) >= 200
    assert lab.ping("wan2", T1_6, count=2, interval=0.05).received == 2  # not T1_6's delay
    lab.set_delay(None, 0)
    assert lab.ping("wan2", T2_6, timeout=0.15).received == 1


def test_a_carrier_cut_does_not_renumber_the_isp(lab: Lab) -> None:
    lab.ra_add("wan1")
    lab.carrier_down("wan1")
    assert lab.ping("wan1", T1_6, timeout=0.3).received == 0
    lab.carrier_up("wan1")
    assert addresses(lab, "isp:wan1", "cust") == ["2001:db8:1::1/64", "fe80::1/64"]
    assert lab.address6_flags("wan1") == frozenset({"nodad"})
    assert lab.ping("wan1", T1_6, timeout=2.0).received == 1


def test_a_daemon_address_through_dad_is_tentative_then_usable(lab_factory: LabFactory) -> None:
    lab = lab_factory([Uplink("wan1", dad=True)])
    wait_until(lambda: lab.address6_flags("wan1") == frozenset(), "DAD to end on wan1")
    lab.redo_dad("wan1", transmits=1)
    assert lab.address6_flags("wan1") == frozenset({"tentative"})  # from the call on
    wait_until(lambda: lab.address6_flags("wan1") == frozenset(), "DAD to end again")
    lab.ra_add("wan1")
    assert lab.ping("wan1", T1_6).received == 1
    with pytest.raises(ValueError, match="transmits"):
        lab.redo_dad("wan1", transmits=0)


def test_a_redial_brings_the_ipv6_addresses_back(lab: Lab) -> None:
    for uplink in ("wan1", "ppp0"):
        lab.ra_add(uplink)
        lab.recreate_uplink(uplink)
        assert lab.default_routes(family=6) == []  # gone with the interface
        assert lab.address6_flags(uplink) == frozenset({"nodad"})
        lab.ra_add(uplink)
        assert lab.ping(uplink, T1_6).received == 1
        lab.ra_withdraw(uplink)


def test_multipath_routes_are_read_with_their_nexthops(lab: Lab) -> None:
    lab.run("daemon", ["ip", "-6", "route", "add", "2001:db8:99::/64", "metric", "7",
                       *("nexthop", "via", "fe80::1", "dev", "wan1"),
                       *("nexthop", "via", "fe80::1", "dev", "wan2", "weight", "3")])  # fmt: skip
    lab.run("daemon", ["ip", "route", "add", "198.18.0.0/24",
                       *("nexthop", "via", "100.64.1.1", "dev", "wan1"),
                       *("nexthop", "via", "100.64.2.1", "dev", "wan2")])  # fmt: skip
    (six,) = [r for r in lab.routes(family=6) if r.dst == "2001:db8:99::"]
    assert (six.dst_len, six.metric, six.gateway, six.oif, six.family) == (64, 7, None, None, 6)
    assert six.nexthops == (Nexthop("fe80::1", "wan1", 1, ()), Nexthop("fe80::1", "wan2", 3, ()))
    (four,) = [r for r in lab.routes() if r.dst == "198.18.0.0"]
    assert [(h.gateway, h.oif) for h in four.nexthops] == [
        ("100.64.1.1", "wan1"),
        ("100.64.2.1", "wan2"),
    ]
    connected = {(r.dst, r.dst_len, r.oif) for r in lab.routes(family=6) if not r.nexthops}
    assert ("2001:db8:1::", 64, "wan1") in connected
    assert any(r.dst == "2001:db8:1::2" for r in lab.routes(table=255, family=6))
    with pytest.raises(ValueError, match="family"):
        lab.routes(family=5)  # type: ignore[arg-type]


def test_targets_of_both_families_and_only_documentation_ones() -> None:
    mixed = Lab(["wan1"], targets=["2001:DB8:FFFF::20", "192.0.2.7"])
    assert (mixed.targets, mixed.targets6) == (("192.0.2.7",), ("2001:db8:ffff::20",))
    only6 = Lab(["wan1"], targets=["2001:db8:ffff::20"])
    assert (only6.targets, only6.targets6) == (("203.0.113.10",), ("2001:db8:ffff::20",))
    with pytest.raises(ValueError, match="target"):
        Lab(["wan1"], targets=["2001:4860:4860::8888"])
    with pytest.raises(ValueError, match="own links"):
        Lab(["wan1"], targets=["2001:db8:1::5"])  # on wan1's access link
    with pytest.raises(ValueError, match="own links"):
        Lab(["wan1"], targets=["2001:db8:f001::9"])  # on its ISP's way to the internet
    with pytest.raises(ValueError, match="distinct"):
        Lab(["wan1"], targets=["2001:db8:ffff::20", "2001:db8:ffff:0::20"])
