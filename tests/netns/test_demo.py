"""`pingu demo` end to end, as a newcomer runs it: the whole script behaves (failover and
failback in both families, an IPv6-only failover, every uplink down), and the lab's
namespaces are gone afterwards."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.netns.conftest import namespaces_now

DEMO_TIMEOUT = 240.0


def test_demo_shows_failover_failback_ipv6_failover_and_all_down_then_cleans_up() -> None:
    before = set(namespaces_now())
    done = subprocess.run(
        [sys.executable, "-m", "pingu", "demo", "--step-pause", "0.2"],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr

    prefix = re.search(r"building lab (pgdemo-[0-9a-f]+)", out)
    assert prefix, out
    new = set(namespaces_now()) - before
    assert not [ns for ns in new if ns.startswith(prefix[1] + "-")], out
    assert f"no namespace {prefix[1]}-* left" in out

    assert "[ok] pingu's routes for wan1, wan2 and ppp0 in IPv4 and IPv6" in out
    assert "WARNING wan1/ipv4 up -> down" in out
    assert "WARNING wan1/ipv6 up -> down" in out
    assert "[ok] failover: wan1's routes removed" in out
    assert "WARNING wan1/ipv4 down -> up" in out
    assert "WARNING wan1/ipv6 down -> up" in out
    assert "[ok] failback: wan1's routes back" in out
    # The IPv6-only cut: wan1's IPv6 goes (once more), its IPv4 stays routed.
    ipv6_step = out[out.index("cut the primary's IPv6 only ===") : out.index("cut everything ===")]
    assert "WARNING wan1/ipv6 up -> down" in ipv6_step
    assert "wan1/ipv4" not in ipv6_step
    assert "[ok] IPv6 failover: wan1's IPv6 route removed; its IPv4 route kept" in ipv6_step
    assert "traffic to 203.0.113.10: leaves via wan1" in ipv6_step
    assert "traffic to 2001:db8:ffff::10: leaves via wan2" in ipv6_step
    assert "IPv6 default routes in " in out
    assert "[ok] no default route at all, in either family" in out
    assert "(no default route: this box cannot reach the internet)" in out
    assert "[ok] the client routes back" in out
    assert "IPv6 failover (IPv6 cut to its route removed): " in out
    assert "[FAILED]" not in out
    assert "every step behaved" in out
