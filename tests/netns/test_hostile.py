"""The real daemon in the lab against hostile input (issue 12): a configuration that
breaks the parser or blocks its reader, a state file forged by whoever can write beside
it or replaced by a FIFO, a reset script swapped for another user's after start-up, and
a hook that leaves a child behind. Each time the daemon goes on deciding (an upstream cut
still fails over), refuses what it must not trust, and stops when told."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pingu.lab import Lab
from tests.netns.daemon import Daemons, RunningDaemon, until, write_script

pytestmark = pytest.mark.netns

FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
NOBODY = 65534
WAIT_S = 20.0
COMMAND_S = 60.0
BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip()


@pytest.fixture
def lab(dhcp_lab: Lab) -> Lab:
    return dhcp_lab


def config_for(lab: Lab, **top: Any) -> dict[str, Any]:
    wan1 = top.pop("wan1", {})
    return {
        "host": lab.targets[0],
        "period": 0.5,
        **top,
        "interfaces": {
            "wan1": {"metric": 100, **FAST, **wan1},
            "wan2": {"metric": 200, **FAST},
        },
    }


def started(daemons: Daemons, lab: Lab, config: dict[str, Any]) -> RunningDaemon:
    pingu = daemons.start(lab, config)
    both = {"wan1": (lab.gateway("wan1"), 100), "wan2": (lab.gateway("wan2"), 200)}
    pingu.until(lambda: pingu.own_routes() == both, "pingu's routes on wan1 and wan2")
    return pingu


def still_deciding(lab: Lab, pingu: RunningDaemon) -> None:
    """A cut upstream still fails over: the decision loop is not held up."""
    lab.cut_upstream("wan1")
    pingu.until(lambda: "wan1" not in pingu.own_routes(), "failover: wan1's route removed")


def release(fifo: Path) -> None:
    """Let whoever waits to open `fifo` go on."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))


# -- 1, 2. the configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    "hostile",
    [
        lambda good: good.replace('"metric": 100', '"metric": ' + "1" * 4301),
        lambda good: good.replace('"period": 0.5', '"period": ' + "[" * 1000 + "]" * 1000),
    ],
    ids=["4301 digits", "1000 deep"],
)
def test_a_hostile_file_on_sighup_is_rejected_and_the_daemon_goes_on(
    lab: Lab, daemons: Daemons, hostile: Any
) -> None:
    pingu = started(daemons, lab, config_for(lab))
    mark = pingu.mark()
    pingu.config_path.write_text(hostile(json.dumps(pingu.config)))
    pingu.send_signal(signal.SIGHUP)
    pingu.wait_log(r"reload of .* rejected: 1 problem\(s\); the running configuration stays")
    assert not pingu.find_log("Traceback", after=mark)
    still_deciding(lab, pingu)
    assert pingu.stop() == 0


def test_a_fifo_on_sighup_is_rejected_at_once_and_the_daemon_goes_on(
    lab: Lab, daemons: Daemons
) -> None:
    pingu = started(daemons, lab, config_for(lab))
    pingu.config_path.unlink()
    os.mkfifo(pingu.config_path)
    try:
        pingu.send_signal(signal.SIGHUP)
        pingu.wait_log(r"cannot read the configuration file: it is a FIFO, not a regular file")
        still_deciding(lab, pingu)
        assert pingu.stop() == 0
    finally:
        release(pingu.config_path)


def test_run_with_a_fifo_as_configuration_exits_at_once(lab: Lab, tmp_path: Path) -> None:
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    before = lab.default_routes()
    try:
        done = lab.run(
            "daemon",
            [sys.executable, "-m", "pingu", "run", "--config", str(fifo)],
            check=False,
            timeout=COMMAND_S,
        )
    finally:
        release(fifo)
    assert done.returncode == 1
    assert "it is a FIFO, not a regular file" in done.stderr
    assert lab.default_routes() == before


# -- 4, 6. the state file ----------------------------------------------------------------


def forged_state(lab: Lab) -> dict[str, Any]:
    """What someone would plant: a gateway of theirs for wan1, as if pingu had learned it
    in this very boot."""
    forged_gateway = lab.gateway("wan1").rsplit(".", 1)[0] + ".66"
    return {
        "kind": "pingu-state",
        "version": 1,
        "boot_id": BOOT_ID,
        "uplinks": {
            "wan1": {
                "gateway": forged_gateway,
                "metric": 1024,
                "proto": 16,
                "scope": 0,
                "health": "up",
            }
        },
    }


def test_a_state_file_forged_in_a_directory_others_can_write_is_ignored(
    lab_factory: Any, daemons: Daemons, tmp_path: Path
) -> None:
    lab = lab_factory(["wan1", "wan2"])
    lab.dhcp_add("wan2", metric=1025)  # wan1's gateway would come only from the file
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    state = shared / "state.json"
    forged = forged_state(lab)
    state.write_text(json.dumps(forged))
    os.chown(state, NOBODY, NOBODY)
    gateway = forged["uplinks"]["wan1"]["gateway"]

    pingu = daemons.start(lab, config_for(lab, state_file=str(state)), verbose=True)
    pingu.until(lambda: "wan2" in pingu.own_routes(), "wan2's route")
    pingu.wait_log(rf"state file {state} ignored: {shared}: writable by group or others")
    pingu.wait_log(r" wan2: round passed", count=3)  # time for a forged lease to be used
    assert all(route.gateway != gateway for route in lab.default_routes())
    assert not pingu.find_log(rf"installed default via {gateway}")
    assert pingu.stop() == 0
    # Nothing "restored" from the forged file stays behind.
    assert all(route.gateway != gateway for route in lab.default_routes())
    assert json.loads(state.read_text()) == forged  # not written through either


def test_a_fifo_as_state_file_blocks_neither_start_up_nor_stop(
    lab: Lab, daemons: Daemons, tmp_path: Path
) -> None:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    fifo = directory / "state.json"
    os.mkfifo(fifo, 0o600)
    try:
        pingu = started(daemons, lab, config_for(lab, state_file=str(fifo)))
        pingu.wait_log(rf"state file {fifo} ignored: .*a FIFO")
        still_deciding(lab, pingu)  # a state change, so a write is tried (and refused)
        pingu.wait_log(rf"state file {fifo}: cannot write it: .*a FIFO")
        assert pingu.stop(timeout=WAIT_S) == 0  # the final write did not hold SIGTERM up
    finally:
        release(fifo)
    assert os.path.exists(fifo)
    assert not fifo.is_file()  # left alone, never replaced


# -- 12, 14. scripts ---------------------------------------------------------------------


def test_a_reset_script_swapped_for_another_users_after_start_up_is_not_run(
    lab: Lab, daemons: Daemons, tmp_path: Path
) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir(mode=0o755)
    proof = tmp_path / "ran-as"
    reset = write_script(scripts / "reset.sh", "#!/bin/sh\nexit 0\n")
    pingu = started(daemons, lab, config_for(lab, wan1={"reset_script": reset}))
    # After the check at start-up: the script becomes another user's, and changes.
    write_script(Path(reset), f"#!/bin/sh\nid > {proof}\n")
    os.chown(reset, NOBODY, NOBODY)
    still_deciding(lab, pingu)
    pingu.wait_log(rf"wan1: reset script {reset} refused, not run: owned by uid 65534")
    assert not proof.exists()
    assert not pingu.find_log(r"started reset script")
    assert pingu.stop() == 0


def test_a_script_of_another_user_stops_the_daemon_from_starting(
    lab: Lab, daemons: Daemons, tmp_path: Path
) -> None:
    reset = write_script(tmp_path / "reset.sh", "#!/bin/sh\nexit 0\n")
    os.chown(reset, NOBODY, NOBODY)
    before = lab.default_routes()
    pingu = daemons.start(lab, config_for(lab, wan1={"reset_script": reset}))
    assert pingu.process.wait(COMMAND_S) == 1
    assert pingu.find_log(r"interfaces\.wan1\.reset_script: .*owned by uid 65534")
    assert lab.default_routes() == before


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[Path]:
    """Where hooks write the pids of what they leave running; all killed at the end."""
    pids = tmp_path / "pids"
    yield pids
    if pids.exists():
        for line in pids.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line), signal.SIGKILL)


def test_a_hook_that_leaves_a_child_behind_is_over_when_it_exits(
    lab: Lab, daemons: Daemons, tmp_path: Path, leftovers: Path
) -> None:
    record = tmp_path / "hooks"
    down = write_script(
        tmp_path / "down.sh",
        f"#!/bin/sh\nsetsid sleep 300 &\necho $! >> {leftovers}\necho down >> {record}\n",
    )
    up = write_script(tmp_path / "up.sh", f"#!/bin/sh\necho up >> {record}\n")
    config = config_for(lab, script_timeout=60, wan1={"down_script": down, "up_script": up})
    pingu = started(daemons, lab, config)
    still_deciding(lab, pingu)
    # Over when its process exits: not killed at script_timeout for what it left running.
    pingu.wait_log(rf"wan1: {down} exited with status 0", timeout=WAIT_S)
    lab.restore_upstream("wan1")
    until(lambda: record.exists() and "up" in record.read_text().split(), "the up hook", WAIT_S)
    assert record.read_text().split() == ["down", "up"]
    assert not pingu.find_log("killed")
    assert pingu.stop() == 0
