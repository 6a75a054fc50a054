"""The history of the real daemon in the lab (issue 16): one failover followed by its event
id across the log line, the down script's environment and `pingu status --json`; the
sparkline and the last changes in `pingu status`; and `pingu status --check`, as
keepalived's track_script runs it, following the uplinks down and back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pingu.domain.views import SPARK_LOST
from pingu.lab import Lab, _process
from tests.netns.daemon import Daemons, RunningDaemon, until, write_script

pytestmark = pytest.mark.netns

FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
WAIT_S = 30.0  # two shared cores: generous, and every wait is bounded
COMMAND_S = 60.0


@pytest.fixture
def lab(dhcp_lab: Lab) -> Lab:
    return dhcp_lab


def pingu_status(pingu: RunningDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    """`pingu status` from the root namespace, over the daemon's socket file."""
    socket_path = pingu.config["control_socket"]
    return subprocess.run(
        [sys.executable, "-m", "pingu", "status", "--socket", socket_path, *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_S,
        env=_process.helper_env(),
        check=False,
    )


def document(pingu: RunningDaemon) -> dict[str, Any]:
    done = pingu_status(pingu, "--json")
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded


def check(pingu: RunningDaemon, *args: str) -> int:
    """`pingu status --check`: its exit status; it must print nothing."""
    done = pingu_status(pingu, "--check", *args)
    assert (done.stdout, done.stderr) == ("", "")
    return done.returncode


def test_one_failover_followed_by_its_event_id_and_the_check(
    lab: Lab, daemons: Daemons, tmp_path: Path
) -> None:
    record = tmp_path / "down.runs"
    down = write_script(
        tmp_path / "down.sh",
        f'#!/bin/sh\necho "$PINGU_EVENT_ID $PINGU_INTERFACE $PINGU_OLD_STATE" >> {record}\n',
    )
    config = {
        "host": lab.targets[0],
        "period": 0.5,
        "interfaces": {
            "wan1": {"metric": 100, **FAST, "down_script": down},
            "wan2": {"metric": 200, **FAST},
        },
    }
    pingu = daemons.start(lab, config)
    pingu.until(lambda: len(pingu.own_routes()) == 2, "routes for both uplinks", WAIT_S)
    until(lambda: check(pingu) == 0, "the check passing", WAIT_S)
    assert check(pingu, "--family", "ipv4") == 0
    assert check(pingu, "--family", "ipv6") == 1  # managed in IPv4 only

    def wan1_rounds() -> list[dict[str, Any]]:
        rounds: list[dict[str, Any]] = document(pingu)["uplinks"][0]["families"]["ipv4"]["rounds"]
        return rounds

    # A round that passed before the cut (the first may still be under way, and a cut that
    # comes during it makes it fail).
    until(lambda: any(r["passed"] for r in wan1_rounds()), "a round of wan1 passing", WAIT_S)
    lab.cut_upstream("wan1")
    found = pingu.wait_log(r" wan1 up -> down: .*; route metric 100 removed \(event (\d+)\)$")
    event_id = int(found[1])
    until(lambda: record.exists() and record.read_text() != "", "the down script's run", WAIT_S)
    assert record.read_text() == f"{event_id} wan1 up\n"
    pingu.wait_log(rf" wan1: started down script {down} \(pid \d+\) for event {event_id}: ")
    status = document(pingu)
    (event,) = [e for e in status["events"] if e["id"] == event_id]
    assert (event["uplink"], event["family"], event["from"], event["to"]) == (
        "wan1",
        "ipv4",
        "up",
        "down",
    )
    assert event["changed"] == ["route metric 100 removed", "down_script run"]
    assert status["last_event_id"] >= event_id
    rounds = status["uplinks"][0]["families"]["ipv4"]["rounds"]
    assert any(r["passed"] for r in rounds[:-1])
    assert rounds[-1]["passed"] is False
    assert rounds[-1]["received"] == 0

    table = pingu_status(pingu)
    assert table.returncode == 0, table.stderr
    wan1 = table.stdout[table.stdout.index("\nwan1  down for ") : table.stdout.index("\nwan2 ")]
    (sparkline,) = [line for line in wan1.splitlines() if line.startswith("  rounds       ")]
    assert sparkline.split()[1].endswith(SPARK_LOST), sparkline
    assert f" #{event_id} up -> down: " in wan1
    assert check(pingu) == 0  # wan2 still routes

    lab.cut_upstream("wan2")
    pingu.until(lambda: not pingu.own_routes(), "no route left", WAIT_S)
    until(lambda: check(pingu) == 1, "the check failing with every uplink down", WAIT_S)
    lab.restore_upstream("wan1")
    pingu.until(lambda: "wan1" in pingu.own_routes(), "wan1's route back", WAIT_S)
    until(lambda: check(pingu) == 0, "the check passing again", WAIT_S)
    back = pingu.wait_log(r" wan1 down -> up: .* \(event (\d+)\)$")
    assert int(back[1]) > event_id
    assert pingu.stop() == 0
    assert check(pingu) == 3  # not running
