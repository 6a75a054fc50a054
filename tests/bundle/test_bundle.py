"""The single-file executable, as an operator gets it: it starts, checks configurations, and
runs the daemon through a failover in the lab. A module missing from the bundle (a
pyroute2 plugin, a compiled dependency_injector module, a lazily imported pingu module)
fails here, not on a router."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pingu import __version__
from pingu.lab import Lab
from tests.bundle.conftest import LabFactory, bundle_env
from tests.unit.test_examples import CONFIGS, installed_copy

RunBundle = Callable[..., subprocess.CompletedProcess[str]]
PROTO = 136
WAIT_S = 20.0
FAST = {"interval": 100, "timeout": 300, "count": 5, "max_lost": 2}


def until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(0.05)


def test_version(run_bundle: RunBundle) -> None:
    done = run_bundle("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"pingu {__version__}"


@pytest.mark.parametrize("example", CONFIGS, ids=[path.name for path in CONFIGS])
def test_check_config_on_the_examples(run_bundle: RunBundle, example: Path, tmp_path: Path) -> None:
    done = run_bundle("check-config", str(installed_copy(example, tmp_path)))
    assert done.returncode == 0, done.stderr
    assert "dead uplink detected within" in done.stdout


def test_check_config_reports_errors_without_a_traceback(
    run_bundle: RunBundle, tmp_path: Path
) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"host": "203.0.113.10", "interfaces": {"wan1": {"metric": 100, "cont": 3}}}')
    done = run_bundle("check-config", str(path))
    assert done.returncode == 1
    assert "interfaces.wan1.cont" in done.stderr
    assert "Traceback" not in done.stderr


def test_bundled_lab_helpers_run(run_bundle: RunBundle) -> None:
    # `pingu demo` starts the lab's helpers as `sys.executable -m pingu.lab.X`.
    for helper in ("pingu.lab.relay", "pingu.lab.responder", "pingu.lab.ping"):
        done = run_bundle("-m", helper, "--help")
        assert done.returncode == 0, f"{helper}: {done.stderr}"
        assert "usage" in done.stdout.lower(), helper
    refused = run_bundle("-m", "json.tool")
    assert refused.returncode != 0


@pytest.fixture
def daemon(
    lab_factory: LabFactory, bundle: Path, tmp_path: Path
) -> Iterator[tuple[Lab, subprocess.Popen[str]]]:
    """The executable as the daemon of a two-ISP lab, having captured both DHCP routes."""
    lab = lab_factory(["wan1", "wan2"])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    config = {
        "host": lab.targets[0],
        "period": 0.5,
        "state_file": str(tmp_path / "state.json"),
        "control_socket": str(tmp_path / "control.sock"),
        "interfaces": {"wan1": {"metric": 100, **FAST}, "wan2": {"metric": 200, **FAST}},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        process = lab.popen_in_daemon(
            [str(bundle), "run", "--config", str(path)],
            cwd=tmp_path,
            env=bundle_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield lab, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(WAIT_S)
            print(log_path.read_text())


def own_routes(lab: Lab) -> dict[str, tuple[str | None, int]]:
    """uplink -> (gateway, metric) of pingu's routes in table main."""
    return {str(r.oif): (r.gateway, r.metric) for r in lab.default_routes() if r.proto == PROTO}


def test_failover_reload_and_clean_stop_in_the_lab(
    daemon: tuple[Lab, subprocess.Popen[str]], tmp_path: Path
) -> None:
    lab, process = daemon
    log_path = tmp_path / "daemon.log"
    both = {"wan1": (lab.gateway("wan1"), 100), "wan2": (lab.gateway("wan2"), 200)}
    until(
        lambda: {r.proto for r in lab.default_routes()} == {PROTO} and own_routes(lab) == both,
        "pingu's routes for both uplinks, and the DHCP routes captured",
    )

    lab.cut_upstream("wan1")
    until(lambda: "wan1" not in own_routes(lab), "failover: wan1's route removed")
    assert own_routes(lab) == {"wan2": both["wan2"]}, "wan2's route must stay"

    # systemd's ExecReload signals the main process: the one-file bootloader, which must
    # pass SIGHUP on to the daemon rather than die of it.
    process.send_signal(signal.SIGHUP)
    until(lambda: "reloaded" in log_path.read_text(), "the daemon logs its reload")
    assert process.poll() is None

    process.send_signal(signal.SIGTERM)
    assert process.wait(WAIT_S) == 0
    restored = {(r.oif, r.gateway, r.metric, r.proto) for r in lab.default_routes()}
    assert restored == {
        ("wan1", lab.gateway("wan1"), 1024, 16),
        ("wan2", lab.gateway("wan2"), 1025, 16),
    }
