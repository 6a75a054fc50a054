"""The simulated network itself, on the real kernel: paths, impairments, DHCP, teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pingu.lab import Lab, LabError, Uplink
from tests.netns.conftest import LabFactory, leftovers, namespaces_now

pytestmark = pytest.mark.netns

T1, T2 = "203.0.113.10", "203.0.113.11"
RTPROT_BOOT, RTPROT_DHCP = 3, 16
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253


def lease_all(lab: Lab) -> None:
    lab.dhcp_add("wan1", metric=100)
    lab.dhcp_add("wan2", metric=200)
    lab.dhcp_add("ppp0", metric=300)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too; our own children are reaped by the lab.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"


def test_echoes_reach_every_target_through_every_uplink(lab: Lab) -> None:
    lease_all(lab)
    for uplink in lab.uplinks:
        for target in (T1, T2):
            result = lab.ping(uplink, target, count=2, interval=0.05)
            assert result.received == 2, (uplink, target, result)
    by_source = {(e.src, e.dst) for e in lab.responder_log()}
    assert by_source == {(lab.local_address(u), t) for u in lab.uplinks for t in (T1, T2)}


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
