"""`pingu status` and the metrics endpoint against the real daemon in the lab: what they
report before and after the primary's upstream is cut, and a second pingu refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pingu.lab import Lab, Uplink, _process
from tests.netns.conftest import LabFactory
from tests.netns.daemon import Daemons, RunningDaemon

pytestmark = pytest.mark.netns

FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
# The daemon's own namespace is new: nothing else listens on its loopback.
METRICS_PORT = 9736
WAIT_S = 30.0  # two shared cores: generous, and every wait is bounded
COMMAND_S = 60.0


def pingu_status(socket_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`pingu status` as the operator runs it: from the root namespace, over the socket
    file (a Unix socket reaches the daemon whatever network namespace it is in)."""
    return subprocess.run(
        [sys.executable, "-m", "pingu", "status", "--socket", socket_path, *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_S,
        env=_process.helper_env(),
        check=False,
    )


def status_document(pingu: RunningDaemon) -> dict[str, Any]:
    done = pingu_status(pingu.config["control_socket"], "--json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {uplink["name"]: uplink for uplink in document["uplinks"]}


def scrape(lab: Lab) -> str:
    """GET /metrics from inside the daemon's namespace, where its 127.0.0.1 is."""
    fetch = (
        "import sys, urllib.request; "
        "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
    )
    url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
    return lab.run("daemon", [sys.executable, "-c", fetch, url], timeout=COMMAND_S).stdout


def sample(text: str, name: str, uplink: str) -> float:
    found = re.search(rf'^{name}{{family="ipv4",uplink="{uplink}"}} (\S+)$', text, re.MULTILINE)
    assert found, f"{name} of {uplink} not in the metrics"
    return float(found[1])


def test_status_and_metrics_follow_a_failover(lab_factory: LabFactory, tmp_path: Path) -> None:
    lab = lab_factory(["wan1", "wan2", Uplink("ppp0", "p2p")])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    lab.dhcp_add("ppp0", metric=1026, proto="boot")
    config = {
        "host": lab.targets[0],
        "period": 0.5,
        "metrics": f"127.0.0.1:{METRICS_PORT}",
        "interfaces": {
            "wan1": {"metric": 100, **FAST},
            "wan2": {"metric": 200, **FAST},
            "ppp0": {"metric": 300, **FAST},
        },
    }
    with Daemons(tmp_path) as daemons:
        pingu = daemons.start(lab, config)
        assert pingu.config["control_socket"] == str(tmp_path / "control.sock")
        pingu.until(lambda: len(pingu.own_routes()) == 3, "routes for all three uplinks", WAIT_S)
        pingu.until(
            lambda: all(u["state"] == "up" for u in status_document(pingu)["uplinks"]),
            "every uplink up in pingu status",
            WAIT_S,
        )

        document = status_document(pingu)
        assert document["status_version"] == 1
        assert document["pid"] == pingu.pid
        assert document["all_down"] is False
        uplinks = by_name(document)
        assert list(uplinks) == ["wan1", "wan2", "ppp0"]
        for name, metric in [("wan1", 100), ("wan2", 200)]:
            assert uplinks[name]["gateway"] == lab.gateway(name)
            assert (uplinks[name]["metric"], uplinks[name]["route_installed"]) == (metric, True)
        assert (uplinks["ppp0"]["gateway"], uplinks["ppp0"]["gateway_known"]) == (None, True)
        assert uplinks["ppp0"]["link"]["point_to_point"] is True
        pingu.until(
            lambda: by_name(status_document(pingu))["wan1"]["last_round"] is not None,
            "a judged round on wan1",
            WAIT_S,
        )
        (target,) = by_name(status_document(pingu))["wan1"]["last_round"]["targets"]
        assert target["address"] == lab.targets[0]

        before = scrape(lab)
        assert 'pingu_uplink_up{family="ipv4",uplink="wan1"} 1.0' in before
        assert 'pingu_uplink_route_installed{family="ipv4",uplink="wan1"} 1.0' in before
        assert 'pingu_all_down{family="ipv4"} 0.0' in before
        assert re.search(r'^pingu_build_info\{.*version="', before, re.MULTILINE)
        rounds_before = sample(before, "pingu_uplink_rounds_total", "wan1")
        sent_before = sample(before, "pingu_uplink_echoes_sent_total", "wan1")

        lab.cut_upstream("wan1")
        pingu.until(lambda: "wan1" not in pingu.own_routes(), "failover: wan1's route gone", WAIT_S)
        pingu.until(
            lambda: by_name(status_document(pingu))["wan1"]["state"] == "down",
            "wan1 down in pingu status",
            WAIT_S,
        )
        wan1 = by_name(status_document(pingu))["wan1"]
        assert wan1["route_installed"] is False
        assert "lost" in wan1["why"]
        assert wan1["last_round"]["passed"] is False
        assert wan1["counters"]["state_changes"] >= 1

        table = pingu_status(pingu.config["control_socket"])
        assert table.returncode == 0, table.stderr
        assert re.search(r"^wan1  down for ", table.stdout, re.MULTILINE), table.stdout
        assert re.search(r"^wan2  up for ", table.stdout, re.MULTILINE), table.stdout
        assert re.search(r"^ppp0  up for ", table.stdout, re.MULTILINE), table.stdout
        assert "not installed (metric 100)" in table.stdout
        assert f"gateway      {lab.gateway('wan2')}" in table.stdout

        after = scrape(lab)
        assert 'pingu_uplink_up{family="ipv4",uplink="wan1"} 0.0' in after
        assert 'pingu_uplink_route_installed{family="ipv4",uplink="wan1"} 0.0' in after
        assert 'pingu_uplink_up{family="ipv4",uplink="wan2"} 1.0' in after
        # A failed round lost more than max_lost (2) of at most 5 echoes.
        assert 0.6 <= sample(after, "pingu_uplink_last_loss_ratio", "wan1") <= 1.0
        assert sample(after, "pingu_uplink_rounds_total", "wan1") > rounds_before
        assert sample(after, "pingu_uplink_echoes_sent_total", "wan1") > sent_before
        assert sample(after, "pingu_uplink_echoes_lost_total", "wan1") > 0
        assert sample(after, "pingu_uplink_state_changes_total", "wan1") >= 1

        assert pingu.stop() == 0
    assert not (tmp_path / "control.sock").exists()
    done = pingu_status(str(tmp_path / "control.sock"))
    assert done.returncode == 3
    assert done.stderr == f"pingu is not running: no control socket at {tmp_path}/control.sock\n"


def test_a_second_pingu_on_the_same_socket_is_refused_before_touching_routes(
    lab_factory: LabFactory, tmp_path: Path
) -> None:
    lab = lab_factory(["wan1"])
    lab.dhcp_add("wan1", metric=1024)
    uplinks = {"wan1": {"metric": 100, **FAST}}
    config = {"host": lab.targets[0], "period": 0.5, "interfaces": uplinks}
    with Daemons(tmp_path) as daemons:
        first = daemons.start(lab, config, name="first")
        first.until(lambda: "wan1" in first.own_routes(), "wan1's route", WAIT_S)
        routes = [(r.oif, r.gateway, r.metric, r.proto) for r in lab.default_routes()]

        second = daemons.start(lab, first.config, name="second")
        assert second.process.wait(COMMAND_S) == 1
        assert second.find_log("another pingu is running")
        assert [(r.oif, r.gateway, r.metric, r.proto) for r in lab.default_routes()] == routes
        assert status_document(first)["pid"] == first.pid
        assert first.stop() == 0
