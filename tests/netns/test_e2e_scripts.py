"""The real daemon running reset scripts in the lab: after the route is removed, with the
event in its environment, at most once per grace period, and a hung script killed at
`script_timeout` while the other uplinks keep failing over and back."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pingu.lab import Lab
from tests.netns.daemon import Daemons, RunningDaemon, until, write_script

pytestmark = pytest.mark.netns

FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}
SCRIPT_TIMEOUT_S = 3
FAILED_ROUNDS_WATCHED = 6


@pytest.fixture
def lab(dhcp_lab: Lab) -> Lab:
    return dhcp_lab


@dataclass(frozen=True)
class Run:
    """One run of the recording script, as it wrote it down."""

    uptime: float
    interface: str
    gateway: str
    reason: str
    loss: str
    own_route: str  # pingu's route on the uplink when the script started ("" = none)


def recording_script(tmp_path: Path, name: str) -> tuple[str, Path]:
    """A reset script that appends one line per run to a record file: the time, the
    PINGU_* variables and pingu's default route on the uplink at that moment."""
    record = tmp_path / f"{name}.runs"
    ip = shutil.which("ip") or "/usr/sbin/ip"
    script = write_script(
        tmp_path / f"{name}.sh",
        "#!/bin/sh\n"
        f'route=$({ip} -4 route show default dev "$PINGU_INTERFACE" proto 136 | tr "\\n" " ")\n'
        "printf '%s|%s|%s|%s|%s|%s\\n' \"$(cut -d' ' -f1 /proc/uptime)\" \"$PINGU_INTERFACE\" "
        '"$PINGU_GATEWAY" "$PINGU_REASON" "$PINGU_LOSS" "$route"'
        f" >> {record}\n",
    )
    return script, record


def runs(record: Path) -> list[Run]:
    if not record.exists():
        return []
    lines = record.read_text().splitlines()
    return [
        Run(float(up), iface, gw, reason, loss, route.strip())
        for up, iface, gw, reason, loss, route in (line.split("|") for line in lines)
    ]


def start(
    daemons: Daemons, lab: Lab, wan1: dict[str, Any], wan2: dict[str, Any], **top: Any
) -> RunningDaemon:
    config = {
        "host": lab.targets[0],
        "period": 0.5,
        **top,
        "interfaces": {
            "wan1": {"metric": 100, **FAST, **wan1},
            "wan2": {"metric": 200, **FAST, **wan2},
        },
    }
    pingu = daemons.start(lab, config, verbose=True)
    both = {"wan1": (lab.gateway("wan1"), 100), "wan2": (lab.gateway("wan2"), 200)}
    pingu.until(lambda: pingu.own_routes() == both, "pingu's routes on wan1 and wan2")
    return pingu


def line_of(pingu: RunningDaemon, pattern: str) -> int:
    """The index of the first log line matching ``pattern``."""
    regex = re.compile(pattern)
    return next(i for i, line in enumerate(pingu.log_lines()) if regex.search(line))


def test_reset_script_runs_after_the_route_is_removed_once_per_grace_period(
    lab: Lab, daemons: Daemons, tmp_path: Path
) -> None:
    long_script, long_record = recording_script(tmp_path, "reset-wan1")
    short_script, short_record = recording_script(tmp_path, "reset-wan2")
    pingu = start(
        daemons,
        lab,
        {"reset_script": long_script, "reset_script_grace_period": 600},
        {"reset_script": short_script, "reset_script_grace_period": 3},
    )
    assert runs(long_record) == runs(short_record) == []  # nothing ran while all was well

    mark = pingu.mark()
    lab.cut_upstream("wan1")
    lab.cut_upstream("wan2")
    until(lambda: len(runs(long_record)) >= 1, "wan1's reset script run")
    first = pingu.mark()
    # A long outage: wan1 found faulty round after round, and wan2's script run again.
    pingu.wait_log(r" wan1: round failed: ", after=first, count=FAILED_ROUNDS_WATCHED)
    until(lambda: len(runs(short_record)) >= 2, "wan2's reset script run again after its grace")
    pingu.wait_log(r" wan1: round failed: ", after=pingu.mark())  # settled: the record is full

    (run,) = runs(long_record)  # once in 600 s, however many rounds failed
    assert len(pingu.find_log(r" wan1: started reset script ", after=mark)) == 1
    assert (run.interface, run.gateway) == ("wan1", lab.gateway("wan1"))
    failed_reasons = [m["reason"] for m in pingu.find_log(r" wan1: round failed: (?P<reason>.*)$")]
    assert run.reason in failed_reasons, (run.reason, failed_reasons)
    assert run.reason.startswith("203.0.113.10: "), run.reason
    lost, sent = map(int, run.loss.split("/"))
    assert lost > FAST["max_lost"], run.loss
    assert sent >= lost, run.loss
    assert run.own_route == "", f"wan1's route was still there when its script ran: {run}"
    removed = line_of(pingu, r" removed default via 100\.64\.1\.1 dev wan1 proto 136 ")
    assert removed < line_of(pingu, r" wan1: started reset script "), "script before removal"

    # wan2's grace period: its script ran again, but not at every one of the failed rounds
    # in between (they come every 0.5 s); spawn delays may shift a start, never by 1 s.
    again = runs(short_record)[:2]
    assert again[1].uptime - again[0].uptime >= 2.0, again
    assert all(r.own_route == "" for r in again), again


def test_a_hung_reset_script_is_killed_at_its_timeout_while_the_other_uplink_fails_over(
    lab: Lab, daemons: Daemons, tmp_path: Path
) -> None:
    pid_file = tmp_path / "hung.pid"
    hung = write_script(tmp_path / "hung.sh", f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 600\n")
    pingu = start(
        daemons,
        lab,
        {"reset_script": hung, "reset_script_grace_period": 600},
        {},
        script_timeout=SCRIPT_TIMEOUT_S,
    )

    lab.cut_upstream("wan1")
    started = pingu.wait_log(r" wan1: started reset script .*\(pid (?P<pid>\d+)\)")
    script_pid = int(started["pid"])
    until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", "the script's pid")
    assert int(pid_file.read_text()) == script_pid
    during = pingu.mark()

    # While the script hangs, wan2 fails over and back, and wan1 is still probed.
    lab.cut_upstream("wan2")
    pingu.until(lambda: "wan2" not in pingu.own_routes(), "wan2's route removed")
    lab.restore_upstream("wan2")
    pingu.until(lambda: "wan2" in pingu.own_routes(), "wan2's route back")
    pingu.wait_log(r" wan1: round failed: ", after=during)
    assert not pingu.find_log(r"still running after", after=during), (
        f"the script was killed before wan2 failed over and back: keep {SCRIPT_TIMEOUT_S} s "
        "above a failover and failback on this machine"
    )
    assert os.path.exists(f"/proc/{script_pid}"), "the script ended before its timeout"

    killed = pingu.wait_log(r" wan1: \S+ still running after (?P<s>[\d.]+) s: killed")
    assert float(killed["s"]) == SCRIPT_TIMEOUT_S
    until(lambda: not os.path.exists(f"/proc/{script_pid}"), "the hung script gone")
    assert pingu.running()
    assert len(pingu.find_log(r" wan1: started reset script ")) == 1  # grace: not again
    # wan2 still fails over after the kill: nothing was left blocked.
    lab.cut_upstream("wan2")
    pingu.until(lambda: "wan2" not in pingu.own_routes(), "wan2's route removed again")
