"""The Debian package, as an operator gets it: lintian finds nothing wrong with it; in a
fresh Debian root it installs with dpkg, enables its unit without starting it, starts
fast, checks the example it ships, and leaves /etc/pingu on removal but not on purge."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pingu import __version__
from pingu.entrypoints import cli
from tests.deb.conftest import ROOT, FreshRoot, need_tool

UNIT = "/lib/systemd/system/pingu.service"
ENABLED = "/etc/systemd/system/multi-user.target.wants/pingu.service"
EXAMPLE = "/etc/pingu/config.json.example"
CONFIG = "/etc/pingu/config.json"
MAX_PACKAGE_BYTES = 5 * 1024 * 1024
MAX_START_S = 1.0  # what an operator would call slow for `pingu --version`


def test_lintian_reports_no_error_and_no_warning(deb: Path) -> None:
    lintian = need_tool("lintian")
    done = subprocess.run(
        [lintian, "--display-info", "--pedantic", str(deb)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    tags = [line for line in done.stdout.splitlines() if re.match(r"[EWIPX]: ", line)]
    print("\n".join(tags))  # the information and pedantic tags, for the record
    bad = [tag for tag in tags if tag.startswith(("E: ", "W: "))]
    assert not bad, "\n".join(bad)
    assert done.returncode == 0, done.stderr


def dpkg_deb(*args: str) -> str:
    return subprocess.run(
        ["dpkg-deb", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_the_package_holds_what_an_operator_needs(deb: Path) -> None:
    listing = dpkg_deb("--contents", str(deb))
    paths = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    assert {
        "/usr/sbin/pingu",
        "/usr/sbin/py-pingu",
        UNIT,
        EXAMPLE,
        "/usr/share/man/man8/pingu.8.gz",
        "/usr/share/man/man5/pingu.json.5.gz",
        "/usr/share/bash-completion/completions/pingu",
        "/usr/share/doc/pingu/copyright",
        "/usr/share/doc/pingu/changelog.gz",
        "/usr/share/doc/pingu/examples/keepalived.conf.example",
        "/usr/share/doc/pingu/examples/pingu-rules.yml",
        "/usr/share/doc/pingu/examples/pingu-dashboard.json",
        "/usr/lib/pingu/pyvenv.cfg",
    } <= paths
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".pyc")]
    assert CONFIG not in paths, "a shipped config.json would start the unit with it"
    assert dpkg_deb("--ctrl-tarfile", str(deb))  # readable
    assert dpkg_deb("--field", str(deb), "Package", "Version").split() == [
        "Package:",
        "pingu",
        "Version:",
        __version__,
    ]
    depends = dpkg_deb("--field", str(deb), "Depends")
    assert "python3 (>= 3." in depends
    assert "procps" in depends  # the unit's ExecReload=/bin/kill
    size = deb.stat().st_size
    print(f"{deb.name}: {size} bytes ({size / 1024 / 1024:.2f} MiB)")
    assert size < MAX_PACKAGE_BYTES


def test_it_installs_enabled_and_not_started(installed_root: FreshRoot) -> None:
    status = installed_root.run("dpkg-query", "-W", "-f=${Status} ${Version}", "pingu")
    assert status.stdout == f"install ok installed {__version__}"
    enabled = installed_root.file(ENABLED)
    assert enabled.is_symlink()
    assert os.readlink(enabled) == UNIT
    unit = installed_root.file(UNIT).read_text()
    assert f"ConditionPathExists={CONFIG}" in unit
    assert "ExecStart=/usr/sbin/pingu run --config /etc/pingu/config.json" in unit
    assert not installed_root.file(CONFIG).exists()
    assert not installed_root.processes(), "something runs in the root after the install"
    conffiles = installed_root.file("/var/lib/dpkg/info/pingu.conffiles").read_text()
    assert conffiles.split() == [EXAMPLE]
    # The postinst compiled the byte code, so that no start has to.
    compiled = list(installed_root.file("/usr/lib/pingu").rglob("cli.cpython-*.pyc"))
    assert compiled, "no byte code compiled at install"


def test_systemd_accepts_the_unit_and_holds_it_back_until_a_configuration_exists(
    installed_root: FreshRoot,
) -> None:
    # The root's own systemd tools, offline: no systemd runs there.
    verify = installed_root.run("systemd-analyze", "verify", "--man=no", UNIT)
    assert verify.stderr == ""
    assert installed_root.run("systemctl", "is-enabled", "pingu.service").stdout.strip() == (
        "enabled"
    )
    held = installed_root.run("systemd-analyze", "condition", "--unit=pingu.service", check=False)
    assert held.returncode != 0
    assert f"ConditionPathExists={CONFIG} failed" in held.stderr
    installed_root.run("cp", EXAMPLE, CONFIG)
    try:
        ready = installed_root.run("systemd-analyze", "condition", "--unit=pingu.service")
        assert f"ConditionPathExists={CONFIG} succeeded" in ready.stderr
    finally:
        installed_root.file(CONFIG).unlink()


def test_version_and_start_up_time(installed_root: FreshRoot) -> None:
    for command in ("pingu", "py-pingu"):
        done = installed_root.run(command, "--version")
        assert done.stdout.strip() == f"pingu {__version__}"
    times = []
    for _ in range(7):
        start = time.monotonic()
        installed_root.run("pingu", "--version")
        times.append(time.monotonic() - start)
    print(f"pingu --version: median {statistics.median(times) * 1000:.0f} ms, {times}")
    assert statistics.median(times) < MAX_START_S


def test_check_config_on_the_shipped_example(installed_root: FreshRoot) -> None:
    # What the example's own first lines tell the operator to do.
    installed_root.run("cp", EXAMPLE, CONFIG)
    try:
        times = []
        for _ in range(5):
            start = time.monotonic()
            done = installed_root.run("pingu", "check-config", CONFIG)
            times.append(time.monotonic() - start)
        assert "eth1: dead uplink detected within" in done.stdout
        assert "eth2: dead uplink detected within" in done.stdout
        print(f"pingu check-config: median {statistics.median(times) * 1000:.0f} ms, {times}")
        assert statistics.median(times) < MAX_START_S
        broken = installed_root.file("/tmp/broken.json")
        broken.write_text('{"host": "203.0.113.10", "interfaces": {"eth1": {"metrc": 1}}}')
        refused = installed_root.run("pingu", "check-config", "/tmp/broken.json", check=False)
        assert refused.returncode == 1
        assert "interfaces.eth1.metrc" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        installed_root.file(CONFIG).unlink()


def test_every_command_s_help_runs_installed(installed_root: FreshRoot) -> None:
    for command in ("", *cli.COMMANDS):
        done = installed_root.run("pingu", *command.split(), "--help")
        assert done.stdout.startswith(f"usage: pingu {command}".rstrip())


def test_the_lab_helpers_run_from_the_installed_environment(installed_root: FreshRoot) -> None:
    # `pingu demo` starts them as `sys.executable -m pingu.lab.X`: the environment's python3.
    for helper in ("pingu.lab.relay", "pingu.lab.responder", "pingu.lab.ping"):
        done = installed_root.run("/usr/lib/pingu/bin/python3", "-m", helper, "--help")
        assert "usage" in done.stdout.lower(), helper


def test_the_installed_manual_pages_render_without_a_warning(installed_root: FreshRoot) -> None:
    need_tool("man")
    for page in ("man8/pingu.8.gz", "man5/pingu.json.5.gz", "man8/py-pingu.8.gz"):
        done = subprocess.run(
            ["man", "--warnings", "-l", str(installed_root.file(f"/usr/share/man/{page}"))],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={**os.environ, "MANWIDTH": "80", "PAGER": "cat"},
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", page
        assert "pingu" in done.stdout


def test_the_installed_completion_completes(installed_root: FreshRoot) -> None:
    script = "/usr/share/bash-completion/completions/pingu"
    installed_root.run("bash", "-n", script)
    program = (
        f"source {script}; COMP_WORDS=(pingu check-config /etc/pingu/config.json.ex); "
        'COMP_CWORD=2; _shtab_pingu; echo "${COMPREPLY[@]}"'
    )
    done = installed_root.run("bash", "--norc", "-c", program)
    assert done.stdout.split() == [EXAMPLE]


def test_removal_keeps_etc_pingu_purge_removes_it_but_not_an_operator_s_script(
    fresh_root: FreshRoot, deb: Path
) -> None:
    # With apt, as the README says; everything it needs is in the root (no network).
    shutil.copyfile(deb, fresh_root.file(f"/tmp/{deb.name}"))
    fresh_root.run("apt-get", "install", "--yes", "--quiet", f"/tmp/{deb.name}", timeout=300)
    fresh_root.run("cp", EXAMPLE, CONFIG)
    # An upgrade (the same version again) keeps the operator's configuration.
    fresh_root.install(deb)
    assert fresh_root.file(CONFIG).is_file()
    assert list(fresh_root.file("/usr/lib/pingu").rglob("cli.cpython-*.pyc")), "recompiled"
    fresh_root.file("/var/lib/pingu").mkdir(mode=0o700)
    fresh_root.file("/var/lib/pingu/state.json").write_text("{}")

    fresh_root.run("apt-get", "remove", "--yes", "--quiet", "pingu")
    status = fresh_root.run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "pingu")
    assert status.stdout.strip() == "rc"  # removed, configuration kept
    assert fresh_root.file(CONFIG).is_file()
    assert fresh_root.file(EXAMPLE).is_file()
    for gone in ("/usr/sbin/pingu", "/usr/lib/pingu", UNIT, "/usr/share/man/man8/pingu.8.gz"):
        assert not fresh_root.file(gone).exists(), gone

    fresh_root.run("apt-get", "purge", "--yes", "--quiet", "pingu")
    listed = fresh_root.run("dpkg-query", "-W", "pingu", check=False)
    assert listed.returncode != 0  # dpkg knows it no more
    for gone in ("/etc/pingu", "/var/lib/pingu"):
        assert not fresh_root.file(gone).exists(), gone
    assert not fresh_root.file(ENABLED).is_symlink()
    assert not fresh_root.file("/etc/systemd/system/pingu.service").is_symlink()  # unmasked
    assert not list(fresh_root.file("/var/lib/systemd").rglob("pingu*"))

    # In the same root, installed again: a purge leaves an operator's own script in
    # /etc/pingu (and so the directory), only the configuration goes.
    fresh_root.install(deb)
    fresh_root.run("cp", EXAMPLE, CONFIG)
    script = fresh_root.file("/etc/pingu/reset-modem.sh")
    script.write_text("#!/bin/sh\n")
    fresh_root.run("apt-get", "purge", "--yes", "--quiet", "pingu")
    assert sorted(p.name for p in fresh_root.file("/etc/pingu").iterdir()) == ["reset-modem.sh"]


@pytest.fixture(autouse=True)
def _nothing_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test leaves no process behind in the shared root."""
    yield
    if "installed_root" in request.fixturenames:
        root: FreshRoot = request.getfixturevalue("installed_root")
        assert not root.processes()


def test_a_second_build_of_the_same_tree_is_the_same_file(deb: Path, tmp_path: Path) -> None:
    # Every date in the package is the last commit's: two builds of one checkout match.
    subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "deb.py"), "--out", str(tmp_path)],
        capture_output=True,
        check=True,
        timeout=600,
    )
    again = tmp_path / deb.name
    assert again.read_bytes() == deb.read_bytes()
