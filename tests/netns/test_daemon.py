"""The real daemon process in the lab: capture at start-up, failover, failback, carrier loss,
the point-to-point uplink, and a clean stop that puts the captured routes back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pingu.lab import Lab, Uplink
from tests.netns.conftest import LabFactory

PROTO = 136
WAIT_S = 15.0
FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}


def until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(0.02)


def own_routes(lab: Lab) -> dict[str, tuple[str | None, int]]:
    """uplink -> (gateway, metric) of pingu's routes in table main."""
    return {str(r.oif): (r.gateway, r.metric) for r in lab.default_routes() if r.proto == PROTO}


@pytest.fixture
def daemon(lab_factory: LabFactory, tmp_path: Path) -> Iterator[tuple[Lab, subprocess.Popen[str]]]:
    lab = lab_factory(["wan1", "wan2", Uplink("ppp0", "p2p")])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    lab.dhcp_add("ppp0", metric=1026, proto="boot")
    config = {
        "host": lab.targets[0],
        "period": 0.5,
        "state_file": str(tmp_path / "state.json"),
        "control_socket": str(tmp_path / "control.sock"),
        "interfaces": {
            "wan1": {"metric": 100, **FAST},
            "wan2": {"metric": 200, **FAST},
            "ppp0": {"metric": 300, **FAST},
        },
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    log = (tmp_path / "daemon.log").open("w")
    process = lab.popen_in_daemon(
        [sys.executable, "-m", "pingu", "run", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield lab, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(WAIT_S)
        log.close()
        print((tmp_path / "daemon.log").read_text())


def test_capture_failover_failback_carrier_and_clean_stop(
    daemon: tuple[Lab, subprocess.Popen[str]],
) -> None:
    lab, process = daemon
    everything = {
        "wan1": (lab.gateway("wan1"), 100),
        "wan2": (lab.gateway("wan2"), 200),
        "ppp0": (None, 300),
    }
    until(
        lambda: (
            {r.proto for r in lab.default_routes()} == {PROTO} and own_routes(lab) == everything
        ),
        "pingu's routes for all three uplinks, and the captured routes deleted",
    )

    lab.cut_upstream("wan1")
    until(lambda: "wan1" not in own_routes(lab), "failover: wan1's route removed")
    assert own_routes(lab) == {k: v for k, v in everything.items() if k != "wan1"}
    lab.restore_upstream("wan1")
    until(lambda: own_routes(lab) == everything, "failback: wan1's route back")

    lab.carrier_down("wan2")
    until(lambda: "wan2" not in own_routes(lab), "carrier loss: wan2's route removed")
    lab.carrier_up("wan2")
    until(lambda: own_routes(lab) == everything, "carrier back: wan2's route back")

    process.send_signal(signal.SIGTERM)
    assert process.wait(WAIT_S) == 0
    restored = {(r.oif, r.gateway, r.metric, r.proto) for r in lab.default_routes()}
    assert restored == {
        ("wan1", lab.gateway("wan1"), 1024, 16),
        ("wan2", lab.gateway("wan2"), 1025, 16),
        ("ppp0", None, 1026, 3),
    }


def test_no_blackout_at_start_up(daemon: tuple[Lab, subprocess.Popen[str]]) -> None:
    lab, _ = daemon
    seen_without_default = 0
    deadline = time.monotonic() + WAIT_S
    while len(own_routes(lab)) < 3 and time.monotonic() < deadline:
        if not lab.default_routes():
            seen_without_default += 1
    assert len(own_routes(lab)) == 3
    assert seen_without_default == 0, "the table was seen without any default route"
