"""The daemon under exactly the privileges packaging/pingu.service gives it (issue 12):
every feature works there (routes, probes, a reset script, the control socket handed to
a group, metrics, the state file), and `pingu run` without the privileges it needs
exits at once with one line instead of failing every route change and probe.

systemd itself is not run here: `setpriv` applies the unit's CapabilityBoundingSet,
NoNewPrivileges and UMask (read from the unit file, so the test follows it), which are
what pingu's own work depends on. The mount and system-call settings (ProtectSystem,
PrivateTmp, SystemCallFilter, ...) leave the state and socket directories writable and
cover no call pingu makes; they are not reproduced."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pingu.entrypoints.status import query_status
from pingu.lab import Lab
from tests.netns.daemon import Daemons, until, write_script

pytestmark = pytest.mark.netns

UNIT = Path(__file__).parents[2] / "packaging" / "pingu.service"
FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
METRICS_PORT = 9736  # the daemon's namespace is new: nothing else listens there
STATUS_GROUP = 4242  # a group root is not in: handing the socket to it needs CAP_CHOWN
NOBODY = 65534
WAIT_S = 30.0
COMMAND_S = 60.0
# linux/capability.h, for reading /proc/PID/status masks.
CAP_BITS = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_TTY_CONFIG": 26,
}


def unit_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings[key.strip()] = value.strip()
    return settings


def units_capabilities() -> list[str]:
    return unit_settings()["CapabilityBoundingSet"].split()


def setpriv() -> str:
    found = shutil.which("setpriv")
    assert found, "setpriv (util-linux) is needed to run the daemon under the unit's privileges"
    return found


def as_the_unit_runs_it() -> list[str]:
    """A wrapper that execs the daemon with the unit's bounding set, NoNewPrivileges and
    UMask (root keeps, as under systemd, only what the bounding set allows)."""
    unit = unit_settings()
    caps = ",".join("+" + cap.removeprefix("CAP_").lower() for cap in units_capabilities())
    wrapper = ["sh", "-c", f'umask {unit["UMask"]} && exec "$@"', "sh", setpriv()]
    wrapper += [f"--bounding-set=-all,{caps}", "--inh-caps=-all"]
    if unit.get("NoNewPrivileges") == "yes":
        wrapper.append("--no-new-privs")
    return [*wrapper, "--"]


def mask(names: list[str]) -> int:
    return sum(1 << CAP_BITS[name] for name in names)


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory under /tmp that everyone may enter (0755, root's), for the control
    socket a group member must reach; removed at the end."""
    where = Path(tempfile.mkdtemp(prefix="pingu-caps-"))
    where.chmod(0o755)
    try:
        yield where
    finally:
        shutil.rmtree(where)


def status_as_group_member(socket_path: str) -> tuple[int, str]:
    """`pingu status --json` as nobody, member of STATUS_GROUP only (a forked child)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, ask, report through the pipe, never return
        code = 99
        try:
            os.close(read_end)
            os.setgroups([STATUS_GROUP])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                text = json.dumps(query_status(socket_path, 10))
                code = 0
            except Exception as error:
                text = f"{type(error).__name__}: {error}"
                code = 1
            os.write(write_end, text.encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


def scrape(lab: Lab) -> str:
    fetch = (
        "import sys, urllib.request; "
        "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
    )
    url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
    return lab.run("daemon", [sys.executable, "-c", fetch, url], timeout=COMMAND_S).stdout


def test_every_feature_works_under_the_units_capability_set(
    dhcp_lab: Lab, daemons: Daemons, tmp_path: Path, shared_dir: Path
) -> None:
    lab = dhcp_lab
    record = tmp_path / "reset.runs"
    reset = write_script(
        tmp_path / "reset.sh",
        f"#!/bin/sh\ngrep -E '^(CapBnd|NoNewPrivs):' /proc/self/status >> {record}\n"
        f'echo "uid $(id -u) $PINGU_INTERFACE" >> {record}\n',
    )
    socket_path = str(shared_dir / "control.sock")
    config: dict[str, Any] = {
        "host": lab.targets[0],
        "period": 0.5,
        "control_socket": socket_path,
        "control_group": STATUS_GROUP,
        "metrics": f"127.0.0.1:{METRICS_PORT}",
        "state_file": str(tmp_path / "state" / "state.json"),
        "interfaces": {
            "wan1": {"metric": 100, **FAST, "reset_script": reset},
            "wan2": {"metric": 200, **FAST},
        },
    }
    pingu = daemons.start(lab, config, wrapper=as_the_unit_runs_it())
    both = {"wan1": (lab.gateway("wan1"), 100), "wan2": (lab.gateway("wan2"), 200)}
    pingu.until(lambda: pingu.own_routes() == both, "routes: pingu's on wan1 and wan2", WAIT_S)

    # It runs with the unit's set, and no more.
    status = proc_status(pingu.pid)
    assert int(status["CapBnd"], 16) == mask(units_capabilities())
    assert int(status["CapEff"], 16) == mask(units_capabilities())
    assert status["NoNewPrivs"] == "1"

    # The control socket, handed to the group: a member who is not root may ask.
    info = os.stat(socket_path)
    assert (info.st_gid, info.st_mode & 0o777) == (STATUS_GROUP, 0o660)
    code, text = status_as_group_member(socket_path)
    assert code == 0, text
    assert [u["name"] for u in json.loads(text)["uplinks"]] == ["wan1", "wan2"]

    # Probes judge, routes follow, the reset script runs under the same set.
    lab.cut_upstream("wan1")
    pingu.until(lambda: "wan1" not in pingu.own_routes(), "failover: wan1's route removed", WAIT_S)
    until(lambda: record.exists() and "uid" in record.read_text(), "the reset script's run", WAIT_S)
    ran = record.read_text()
    assert f"CapBnd:\t{mask(units_capabilities()):016x}" in ran
    assert "NoNewPrivs:\t1" in ran
    assert "uid 0 wan1" in ran
    lab.restore_upstream("wan1")
    pingu.until(lambda: pingu.own_routes() == both, "failback: wan1's route back", WAIT_S)

    # Metrics, read from the daemon as it is now.
    metrics = scrape(lab)
    assert 'pingu_uplink_up{family="ipv4",uplink="wan1"} 1.0' in metrics
    assert re.search(
        r'^pingu_uplink_rounds_total\{family="ipv4",uplink="wan2"\} [1-9]', metrics, re.M
    )

    # The state file: written, root-only, in a directory made root-only.
    state = Path(config["state_file"])
    until(state.exists, "the state file", WAIT_S)
    assert os.stat(state).st_mode & 0o777 == 0o600
    assert os.stat(state.parent).st_mode & 0o077 == 0
    saved = json.loads(state.read_text())
    assert saved["uplinks"]["wan2"]["lease"]["gateway"] == lab.gateway("wan2")

    assert pingu.stop() == 0
    assert not pingu.find_log(r"Traceback|ERROR (?!ALL UPLINKS)"), pingu.log_text()


def run_without(lab: Lab, where: Path, wrapper: list[str]) -> subprocess.CompletedProcess[str]:
    """`pingu run` in the lab's daemon namespace under `wrapper`, bounded in time."""
    config = where / "config.json"
    config.write_text(
        json.dumps(
            {
                "host": lab.targets[0],
                "state_file": None,
                "control_socket": None,
                "interfaces": {"wan1": {"metric": 100}},
            }
        )
    )
    config.chmod(0o644)
    argv = [*wrapper, sys.executable, "-m", "pingu", "run", "--config", str(config)]
    return lab.run("daemon", argv, check=False, timeout=COMMAND_S)


@pytest.mark.parametrize(
    ("who", "missing"),
    [
        ("root without CAP_NET_RAW", "CAP_NET_RAW"),
        ("root without CAP_NET_ADMIN", "CAP_NET_ADMIN"),
        ("nobody", "CAP_NET_ADMIN and CAP_NET_RAW"),
    ],
)
def test_run_without_its_privileges_exits_at_once_with_one_line(
    dhcp_lab: Lab, shared_dir: Path, who: str, missing: str
) -> None:
    lab = dhcp_lab
    before = [(r.oif, r.gateway, r.metric, r.proto) for r in lab.default_routes()]
    if who == "nobody":
        wrapper = [setpriv(), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    else:
        dropped = missing.removeprefix("CAP_").lower()
        wrapper = [setpriv(), f"--bounding-set=-{dropped}", "--inh-caps=-all", "--"]
    # The file is readable by nobody too: without the check, the daemon would start.
    done = run_without(lab, shared_dir, wrapper)
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        "pingu run needs CAP_NET_ADMIN and CAP_NET_RAW (run it as root); this process lacks "
        f"{missing}: not started, no route touched\n"
    )
    assert [(r.oif, r.gateway, r.metric, r.proto) for r in lab.default_routes()] == before
