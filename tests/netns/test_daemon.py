"""The real daemon process in the lab: capture at start-up, failover, failback, carrier loss,
the point-to-point uplink, and a clean stop that puts the captured routes back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pingu.lab import Lab, Uplink
from tests.netns.conftest import LabFactory
from tests.netns.daemon import PROTO, WAIT_S, Daemons, RunningDaemon

pytestmark = pytest.mark.netns

FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}


@pytest.fixture
def daemon(lab_factory: LabFactory, tmp_path: Path) -> Iterator[tuple[Lab, RunningDaemon]]:
    lab = lab_factory(["wan1", "wan2", Uplink("ppp0", "p2p")])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    lab.dhcp_add("ppp0", metric=1026, proto="boot")
    config = {
        "host": lab.targets[0],
        "period": 0.5,
        "interfaces": {
            "wan1": {"metric": 100, **FAST},
            "wan2": {"metric": 200, **FAST},
            "ppp0": {"metric": 300, **FAST},
        },
    }
    with Daemons(tmp_path) as daemons:
        yield lab, daemons.start(lab, config)


def test_capture_failover_failback_carrier_and_clean_stop(
    daemon: tuple[Lab, RunningDaemon],
) -> None:
    lab, pingu = daemon
    everything = {
        "wan1": (lab.gateway("wan1"), 100),
        "wan2": (lab.gateway("wan2"), 200),
        "ppp0": (None, 300),
    }
    pingu.until(
        lambda: (
            {r.proto for r in lab.default_routes()} == {PROTO} and pingu.own_routes() == everything
        ),
        "pingu's routes for all three uplinks, and the captured routes deleted",
    )

    lab.cut_upstream("wan1")
    pingu.until(lambda: "wan1" not in pingu.own_routes(), "failover: wan1's route removed")
    assert pingu.own_routes() == {k: v for k, v in everything.items() if k != "wan1"}
    lab.restore_upstream("wan1")
    pingu.until(lambda: pingu.own_routes() == everything, "failback: wan1's route back")

    lab.carrier_down("wan2")
    pingu.until(lambda: "wan2" not in pingu.own_routes(), "carrier loss: wan2's route removed")
    lab.carrier_up("wan2")
    pingu.until(lambda: pingu.own_routes() == everything, "carrier back: wan2's route back")

    assert pingu.stop() == 0
    restored = {(r.oif, r.gateway, r.metric, r.proto) for r in lab.default_routes()}
    assert restored == {
        ("wan1", lab.gateway("wan1"), 1024, 16),
        ("wan2", lab.gateway("wan2"), 1025, 16),
        ("ppp0", None, 1026, 3),
    }


def test_no_blackout_at_start_up(daemon: tuple[Lab, RunningDaemon]) -> None:
    lab, pingu = daemon
    seen_without_default = 0
    deadline = time.monotonic() + WAIT_S
    while len(pingu.own_routes()) < 3 and time.monotonic() < deadline:
        if not lab.default_routes():
            seen_without_default += 1
    assert len(pingu.own_routes()) == 3
    assert seen_without_default == 0, "the table was seen without any default route"
