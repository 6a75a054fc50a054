"""The installed package at work: the daemon the package installed in a fresh Debian root
(its launcher, its Python environment, the root's own python3) runs a failover in the
network lab, answers `pingu status`, reloads, and puts the routes back when stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pingu.lab import Lab
from tests.bundle.conftest import LabFactory
from tests.deb.conftest import FreshRoot

PROTO = 136
WAIT_S = 20.0
FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
CONFIG = "/etc/pingu/config.json"
SOCKET = "/run/pingu/control.sock"
STATE = "/var/lib/pingu/state.json"


def until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(0.05)


def own_routes(lab: Lab) -> dict[str, tuple[str | None, int]]:
    return {str(r.oif): (r.gateway, r.metric) for r in lab.default_routes() if r.proto == PROTO}


def test_failover_with_the_installed_daemon(
    installed_root: FreshRoot, lab_factory: LabFactory, tmp_path: Path
) -> None:
    lab = lab_factory(["wan1", "wan2"])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    config = {
        "host": lab.targets[0],
        "period": 0.5,
        "state_file": STATE,
        "control_socket": SOCKET,
        "interfaces": {"wan1": {"metric": 100, **FAST}, "wan2": {"metric": 200, **FAST}},
    }
    installed_root.file(CONFIG).write_text(json.dumps(config))
    installed_root.file("/run/pingu").mkdir(mode=0o755)  # as the unit's RuntimeDirectory=
    log_path = tmp_path / "daemon.log"
    try:
        with log_path.open("w") as log:
            # The unit's own command line, in the lab's daemon namespace, in the root.
            process = lab.popen_in_daemon(
                installed_root.command("/usr/sbin/pingu", "run", "--config", CONFIG),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                run_a_failover(installed_root, lab, process, log_path)
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(WAIT_S)
                print(log_path.read_text())
    finally:
        installed_root.file(CONFIG).unlink()
        shutil.rmtree(installed_root.file("/run/pingu"))
        shutil.rmtree(installed_root.file("/var/lib/pingu"), ignore_errors=True)


def run_a_failover(
    root: FreshRoot, lab: Lab, process: subprocess.Popen[str], log_path: Path
) -> None:
    both = {"wan1": (lab.gateway("wan1"), 100), "wan2": (lab.gateway("wan2"), 200)}
    until(
        lambda: {r.proto for r in lab.default_routes()} == {PROTO} and own_routes(lab) == both,
        "pingu's routes for both uplinks, and the DHCP routes captured",
    )
    # The daemon is the root's python3 running the package's environment.
    exe = os.readlink(f"/proc/{process.pid}/exe")
    assert exe.startswith(f"{root.path}/usr/bin/python3"), exe
    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[:4] == [b"/usr/lib/pingu/bin/python3", b"-I", b"-m", b"pingu"], cmdline

    lab.cut_upstream("wan1")
    until(lambda: "wan1" not in own_routes(lab), "failover: wan1's route removed")
    assert own_routes(lab) == {"wan2": both["wan2"]}, "wan2's route must stay"

    status = root.run("pingu", "status", "--socket", SOCKET, "--json")
    uplinks = json.dumps(json.loads(status.stdout))
    assert "wan1" in uplinks
    assert "wan2" in uplinks

    process.send_signal(signal.SIGHUP)  # what the unit's ExecReload sends
    until(lambda: "reloaded" in log_path.read_text(), "the daemon logs its reload")
    assert process.poll() is None

    lab.restore_upstream("wan1")
    until(lambda: own_routes(lab) == both, "failback: wan1's route back")

    process.send_signal(signal.SIGTERM)
    assert process.wait(WAIT_S) == 0
    restored = {(r.oif, r.gateway, r.metric, r.proto) for r in lab.default_routes()}
    assert restored == {
        ("wan1", lab.gateway("wan1"), 1024, 16),
        ("wan2", lab.gateway("wan2"), 1025, 16),
    }
    saved = json.loads(root.file(STATE).read_text())
    assert "wan1" in json.dumps(saved)
