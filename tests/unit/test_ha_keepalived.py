"""The keepalived side of the two-router lab (pingu/lab/ha.py), without a kernel: the
configuration each router gets, and its track script, which really runs pingu's check."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

from pingu.entrypoints.status import EXIT_NOT_RUNNING
from pingu.lab.ha import VIRTUAL_ADDRESS, keepalived_config, write_check_script


def instance(text: str) -> str:
    found = re.search(r"^vrrp_instance LAN \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert found, text
    return found.group(1)


def test_each_router_tracks_its_script_and_holds_the_address_at_its_priority() -> None:
    text = keepalived_config(router_id="r1", check_script="/x/check", priority=150)
    assert 'script "/x/check"' in text
    assert re.search(r"^\s*enable_script_security$", text, re.MULTILINE)
    body = instance(text)
    assert re.search(r"^\s*priority 150$", body, re.MULTILINE)
    assert re.search(r"^\s*state BACKUP$", body, re.MULTILINE)
    assert f"{VIRTUAL_ADDRESS}/24 dev lan0" in body
    assert re.search(r"track_script \{\s*pingu_uplinks\s*\}", body)
    assert "nopreempt" not in text


def test_nopreempt_is_set_in_the_instance_only_when_asked() -> None:
    text = keepalived_config(router_id="r1", check_script="/x/check", priority=100, preempt=False)
    assert re.search(r"^\s*nopreempt$", instance(text), re.MULTILINE)


def test_a_weight_lowers_the_priority_instead_of_the_fault_state() -> None:
    plain = keepalived_config(router_id="r1", check_script="/x/check", priority=150)
    assert "weight" not in plain
    text = keepalived_config(router_id="r1", check_script="/x/check", priority=150, weight=-60)
    script = re.search(r"^vrrp_script pingu_uplinks \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert script
    assert re.search(r"^\s*weight -60$", script.group(1), re.MULTILINE)


def test_the_track_script_is_root_s_alone_and_runs_pingu_s_check(tmp_path: Path) -> None:
    script = Path(write_check_script(tmp_path / "check", str(tmp_path / "none.sock")))
    assert stat.S_IMODE(script.stat().st_mode) == 0o700
    done = subprocess.run([str(script)], capture_output=True, text=True, timeout=60, check=False)
    # No daemon on that socket: the check's "not running", and silence.
    assert (done.returncode, done.stdout, done.stderr) == (EXIT_NOT_RUNNING, "", "")
