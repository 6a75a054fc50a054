"""`pingu demo` end to end, as a newcomer runs it: the whole script behaves, and the lab's
namespaces are gone afterwards."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.netns.conftest import namespaces_now

DEMO_TIMEOUT = 240.0


def test_demo_shows_failover_failback_and_all_down_then_cleans_up() -> None:
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

    assert "[ok] pingu's routes for wan1, wan2 and ppp0" in out
    assert "WARNING wan1 up -> down" in out
    assert "[ok] failover: wan1's route removed" in out
    assert "WARNING wan1 down -> up" in out
    assert "[ok] failback: wan1's route back" in out
    assert "[ok] no default route at all" in out
    assert "(no default route: this box cannot reach the internet)" in out
    assert "[ok] the client routes back" in out
    assert "[FAILED]" not in out
    assert "every step behaved" in out
