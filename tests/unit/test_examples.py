"""Every example in examples/ passes `pingu check-config`, and the example reset script is a
well-formed executable that relies only on what pingu gives it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pingu.adapters.config_file import script_problem
from pingu.entrypoints import cli

EXAMPLES = Path(__file__).parents[2] / "examples"
CONFIGS = sorted(EXAMPLES.glob("*.json"))
SCRIPTS = sorted(EXAMPLES.glob("*.sh"))
SCRIPT_SETTING = re.compile(r'"(?:reset_script|up_script|down_script)"\s*:\s*"([^"]+)"')
PINGU_VARIABLES = {
    "PINGU_INTERFACE",
    "PINGU_GATEWAY",
    "PINGU_REASON",
    "PINGU_LOSS",
    "PINGU_DELAY_MS",
}


def installed_copy(example: Path, tmp_path: Path) -> Path:
    """`example` as an operator would install it: every script it names that this machine
    lacks (such as /etc/pingu/reset-lte.sh) replaced by a copy of the script shipped in
    examples/, mode 0755; the comments and everything else unchanged."""
    text = example.read_text()
    for script in set(SCRIPT_SETTING.findall(text)):
        if Path(script).exists():
            continue
        shipped = EXAMPLES / Path(script).name
        assert shipped.is_file(), f"{example.name} names {script}, but examples/ lacks it"
        copy = tmp_path / shipped.name
        shutil.copyfile(shipped, copy)
        copy.chmod(0o755)
        text = text.replace(f'"{script}"', f'"{copy}"')
    installed = tmp_path / example.name
    installed.write_text(text)
    return installed


def test_the_issue_s_examples_are_there() -> None:
    names = {path.name for path in CONFIGS}
    assert {"dual-isp.json", "ethernet-lte.json", "three-uplinks.json"} <= names
    assert EXAMPLES / "reset-lte.sh" in SCRIPTS


@pytest.mark.parametrize("example", CONFIGS, ids=[path.name for path in CONFIGS])
def test_example_passes_check_config(
    example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = installed_copy(example, tmp_path)
    status = cli.main(["check-config", str(config)])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "dead uplink detected within" in out


def test_ethernet_lte_runs_the_shipped_reset_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = installed_copy(EXAMPLES / "ethernet-lte.json", tmp_path)
    assert '"/etc/pingu/reset-lte.sh"' in (EXAMPLES / "ethernet-lte.json").read_text()
    assert cli.main(["check-config", str(config)]) == 0
    assert str(tmp_path / "reset-lte.sh") in capsys.readouterr().out


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_example_script_is_a_safe_executable(script: Path, tmp_path: Path) -> None:
    # The repository keeps the executable bit; an installed copy passes pingu's own checks.
    assert script.stat().st_mode & 0o111, f"chmod +x {script}"
    copy = tmp_path / script.name
    shutil.copyfile(script, copy)
    copy.chmod(0o755)
    assert script_problem(str(copy)) is None
    syntax = subprocess.run(
        ["sh", "-n", str(script)], capture_output=True, text=True, timeout=10, check=False
    )
    assert syntax.returncode == 0, syntax.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_example_script_uses_only_what_pingu_passes(script: Path) -> None:
    assert set(re.findall(r"PINGU_[A-Z_]+", script.read_text())) <= PINGU_VARIABLES


def test_reset_lte_without_an_interface_does_nothing_and_says_why() -> None:
    # No interface named: the script must stop before touching anything.
    done = subprocess.run(
        [str(EXAMPLES / "reset-lte.sh")],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 2
    assert "usage" in done.stderr
