"""The real daemon across its lifecycle: kill -9 and restart on the saved state, a corrupt
state file, stopping with `restore` and `keep`, SIGHUP with a good and a bad file, every
uplink down with each `when_all_down`, and the up/down hooks."""

from __future__ import annotations

import json
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pingu.lab import Lab
from tests.netns.daemon import PROTO, Daemons, RunningDaemon, write_script

pytestmark = pytest.mark.netns

FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
DHCP = 16


@pytest.fixture
def lab(dhcp_lab: Lab) -> Lab:
    return dhcp_lab


def two_uplinks(lab: Lab, **top: Any) -> dict[str, Any]:
    return {
        "host": lab.targets[0],
        "period": 0.5,
        "interfaces": {"wan1": {"metric": 100, **FAST}, "wan2": {"metric": 200, **FAST}},
        **top,
    }


def both(lab: Lab) -> dict[str, tuple[str | None, int]]:
    return {"wan1": (lab.gateway("wan1"), 100), "wan2": (lab.gateway("wan2"), 200)}


def table(lab: Lab) -> set[tuple[str, str | None, int, int]]:
    return {(str(r.oif), r.gateway, r.metric, r.proto) for r in lab.default_routes()}


def dhcp_routes(lab: Lab) -> set[tuple[str, str | None, int, int]]:
    return {("wan1", lab.gateway("wan1"), 1024, DHCP), ("wan2", lab.gateway("wan2"), 1025, DHCP)}


def started(lab: Lab, daemons: Daemons, config: dict[str, Any]) -> RunningDaemon:
    pingu = daemons.start(lab, config)
    pingu.until(lambda: table(lab) == own_table(lab, both(lab)), "both uplinks captured")
    return pingu


def own_table(
    lab: Lab, routes: Mapping[str, tuple[str | None, int]]
) -> set[tuple[str, str | None, int, int]]:
    return {(name, gateway, metric, PROTO) for name, (gateway, metric) in routes.items()}


def test_kill_9_and_restart_keeps_gateways_and_original_routes(lab: Lab, daemons: Daemons) -> None:
    first = started(lab, daemons, two_uplinks(lab))
    lab.cut_upstream("wan2")
    first.until(lambda: "wan2" not in first.own_routes(), "wan2 down")
    first.until(
        lambda: (
            json.loads(Path(first.config["state_file"]).read_text())["uplinks"]["wan2"]["health"]
            == "down"
        ),
        "wan2's state saved",
    )
    assert first.kill() == -signal.SIGKILL
    # kill -9: nothing cleaned up; the DHCP routes were deleted at capture, long ago.
    assert table(lab) == own_table(lab, {"wan1": (lab.gateway("wan1"), 100)})

    lab.restore_upstream("wan2")
    second = daemons.start(lab, first.config, name="restarted")
    second.wait_log(r"state file .* adopted .*wan2: gateway " + lab.gateway("wan2"))
    # wan2's gateway came from the state file alone (no DHCP route is left to capture).
    second.until(lambda: second.own_routes() == both(lab), "wan2 back via its saved gateway")
    assert not second.find_log("captured")
    assert second.stop() == 0
    # The captured routes' original attributes survived the kill: put back exactly.
    assert table(lab) == dhcp_routes(lab)


def test_a_corrupt_state_file_is_ignored_with_a_warning(
    lab: Lab, daemons: Daemons, tmp_path: Path
) -> None:
    state = tmp_path / "broken-state.json"
    state.write_text('{"kind": "pingu-state", "version": 1, "uplinks": {"wan1": ')
    pingu = started(lab, daemons, two_uplinks(lab, state_file=str(state)))
    pingu.wait_log(r"WARNING state file .*broken-state.json ignored: not valid JSON")

    def rewritten() -> bool:
        try:
            document = json.loads(state.read_text())
        except json.JSONDecodeError:
            return False
        return document.get("kind") == "pingu-state" and "wan2" in document["uplinks"]

    pingu.until(rewritten, "the state file rewritten whole")
    assert pingu.stop() == 0


def test_stop_with_keep_leaves_pingu_routes(lab: Lab, daemons: Daemons) -> None:
    pingu = started(lab, daemons, two_uplinks(lab, on_exit="keep"))
    assert pingu.stop() == 0
    pingu.wait_log("pingu's routes kept in place")
    assert table(lab) == own_table(lab, both(lab))


def test_stop_with_restore_also_on_sigint(lab: Lab, daemons: Daemons) -> None:
    pingu = started(lab, daemons, two_uplinks(lab))
    assert pingu.stop(signal.SIGINT) == 0
    assert table(lab) == dhcp_routes(lab)


def test_sighup_applies_a_good_file_and_rejects_a_bad_one(lab: Lab, daemons: Daemons) -> None:
    pingu = started(lab, daemons, two_uplinks(lab))
    good = json.loads(json.dumps(pingu.config))
    good["interfaces"]["wan1"]["metric"] = 150
    pingu.write_config(good)
    pingu.send_signal(signal.SIGHUP)
    moved = {"wan1": (lab.gateway("wan1"), 150), "wan2": (lab.gateway("wan2"), 200)}
    # Make before break: for a moment wan1 has both routes, so read the whole table.
    pingu.until(lambda: table(lab) == own_table(lab, moved), "wan1's route moved to metric 150")
    pingu.wait_log(r"reloaded .*: 2 uplinks")

    mark = pingu.mark()
    pingu.config_path.write_text('{"interfaces": {"wan1": {"metric": 150}, }')
    pingu.send_signal(signal.SIGHUP)
    pingu.wait_log(r"ERROR reload of .* rejected: 1 problem", after=mark)
    pingu.wait_log(r"line 1, column .*trailing comma", after=mark)
    assert pingu.own_routes() == moved
    # Still running on the good configuration: it fails over as before.
    lab.cut_upstream("wan2")
    pingu.until(lambda: pingu.own_routes() == {"wan1": moved["wan1"]}, "wan2 failed over")
    assert pingu.stop() == 0
    assert table(lab) == dhcp_routes(lab)


def test_sighup_drops_and_adds_uplinks(lab: Lab, daemons: Daemons) -> None:
    config = two_uplinks(lab)
    only_wan1 = {**config, "interfaces": {"wan1": config["interfaces"]["wan1"]}}
    pingu = daemons.start(lab, only_wan1)
    pingu.until(lambda: "wan1" in pingu.own_routes(), "wan1 captured")
    assert ("wan2", lab.gateway("wan2"), 1025, DHCP) in table(lab)  # not configured: left alone

    pingu.write_config(config)
    pingu.send_signal(signal.SIGHUP)
    pingu.until(lambda: table(lab) == own_table(lab, both(lab)), "wan2 added and captured")

    pingu.write_config(only_wan1)
    pingu.send_signal(signal.SIGHUP)
    wan2_back = own_table(lab, {"wan1": (lab.gateway("wan1"), 100)}) | {
        ("wan2", lab.gateway("wan2"), 1025, DHCP)
    }
    pingu.until(lambda: table(lab) == wan2_back, "wan2 dropped: its DHCP route put back")
    assert pingu.stop() == 0


def test_all_down_with_none_leaves_no_default_route(lab: Lab, daemons: Daemons) -> None:
    pingu = started(lab, daemons, two_uplinks(lab))
    lab.cut_upstream("wan1")
    lab.cut_upstream("wan2")
    pingu.until(lambda: pingu.own_routes() == {}, "both routes removed")
    pingu.wait_log("ERROR ALL UPLINKS DOWN: no default route from pingu: when_all_down is none")
    lab.restore_upstream("wan2")
    pingu.until(lambda: pingu.own_routes() == {"wan2": both(lab)["wan2"]}, "wan2 back")
    pingu.wait_log("uplinks back: no longer all down")
    assert pingu.stop() == 0


def test_all_down_with_keep_best_keeps_one_route_until_an_uplink_is_back(
    lab: Lab, daemons: Daemons
) -> None:
    pingu = started(lab, daemons, two_uplinks(lab, when_all_down="keep_best"))
    lab.cut_upstream("wan1")
    pingu.until(lambda: "wan1" not in pingu.own_routes(), "wan1 down")
    mark = pingu.mark()
    lab.cut_upstream("wan2")
    pingu.wait_log(r"ERROR ALL UPLINKS DOWN: keeping wan\d's route as a last resort", after=mark)
    # Never without a default route: sample the table while both stay down.
    for _ in range(50):
        assert len(pingu.own_routes()) == 1
    kept = next(iter(pingu.own_routes()))
    other = "wan2" if kept == "wan1" else "wan1"
    lab.restore_upstream(other)
    pingu.until(
        lambda: pingu.own_routes() == {other: both(lab)[other]},
        f"{other} back, the last-resort route of {kept} removed",
    )
    assert pingu.stop() == 0
    assert table(lab) == dhcp_routes(lab)


def test_up_and_down_hooks_run_with_the_event_in_their_environment(
    lab: Lab, daemons: Daemons, tmp_path: Path
) -> None:
    record = tmp_path / "hooks.txt"
    body = (
        "#!/bin/sh\n"
        f'echo "$PINGU_EVENT $PINGU_INTERFACE $PINGU_GATEWAY $PINGU_OLD_STATE $PINGU_STATE"'
        f" >> {record}\n"
    )
    up = write_script(tmp_path / "up.sh", body)
    down = write_script(tmp_path / "down.sh", body)
    config = two_uplinks(lab)
    config["interfaces"]["wan1"].update(up_script=up, down_script=down)
    pingu = started(lab, daemons, config)
    lab.cut_upstream("wan1")
    pingu.until(lambda: record.exists() and "down" in record.read_text(), "down hook ran")
    lab.restore_upstream("wan1")
    pingu.until(lambda: len(record.read_text().splitlines()) >= 2, "up hook ran")
    gateway = lab.gateway("wan1")
    assert record.read_text().splitlines()[:2] == [
        f"down wan1 {gateway} up down",
        f"up wan1 {gateway} down up",
    ]
    assert pingu.stop() == 0
