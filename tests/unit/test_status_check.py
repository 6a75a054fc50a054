"""`pingu status --check [--family F]` (issue 16, point 5): keepalived's track_script asks
whether an uplink is up and routed, and hears it from the exit status alone."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pingu.domain import config as settings
from pingu.domain.config import WhenAllDown
from pingu.domain.events import RouteAppeared
from pingu.domain.model import Family
from pingu.entrypoints import status as status_command
from pingu.entrypoints.status import any_routed
from tests.unit.fakes import TARGET, TARGET6, Driver, config, dhcp_route, round_result, uplink
from tests.unit.operations_support import status_document as version_1_document
from tests.unit.test_control import serving, status_cli
from tests.unit.test_core import GW1, GW2, two_uplinks
from tests.unit.test_core_lifecycle import two
from tests.unit.test_history import document


def one_up_one_down() -> Driver:
    driver = two_uplinks()
    driver.capture("wan1", GW1)
    driver.capture("wan2", GW2)
    driver.fail("wan1")
    return driver


def dual_stack_with_ipv6_down() -> Driver:
    driver = Driver(config(uplink("wan1", 100, targets=(TARGET, TARGET6))))
    driver.link("wan1")
    driver.capture("wan1", GW1)
    ra = dataclasses.replace(dhcp_route("wan1", "fe80::1"), proto=9, family=Family.IPV6)
    driver.send(RouteAppeared(ra))
    driver.finish("wan1", round_result(received=0, target=TARGET6), Family.IPV6)
    return driver


# -- what counts as routed ---------------------------------------------------------------


def test_one_uplink_up_and_routed_is_enough() -> None:
    driver = one_up_one_down()
    assert any_routed(document(driver))
    driver.fail("wan2")
    assert not any_routed(document(driver))


def test_a_failing_uplink_still_routes_and_counts() -> None:
    driver = two_uplinks(fall=3)
    driver.capture("wan1", GW1)
    driver.fail("wan1")
    (wan1, _) = document(driver)["uplinks"]
    assert (wan1["state"], wan1["route_installed"]) == ("failing", True)
    assert any_routed(document(driver), "ipv4")


def test_a_route_kept_as_the_last_resort_does_not_count() -> None:
    driver = two(WhenAllDown.KEEP_BEST)
    driver.finish("wan1", round_result(received=0))
    driver.finish("wan2", round_result(received=2))
    status = document(driver)
    assert status["last_resort"] == "wan2"
    assert [u["route_installed"] for u in status["uplinks"]] == [False, True]
    assert not any_routed(status)


def test_family_counts_only_the_uplinks_routed_in_it() -> None:
    status = document(dual_stack_with_ipv6_down())
    assert any_routed(status)
    assert any_routed(status, "ipv4")
    assert not any_routed(status, "ipv6")


def test_a_version_1_document_is_read_as_ipv4() -> None:
    status = version_1_document()  # wan1 down, wan2 up and routed, ppp0 rising; no families
    assert "families" not in status["uplinks"][1]
    assert any_routed(status)
    assert any_routed(status, "ipv4")
    assert not any_routed(status, "ipv6")
    status["uplinks"][1]["route_installed"] = False
    assert not any_routed(status)


@pytest.mark.parametrize(
    "status",
    [{}, {"uplinks": None}, {"uplinks": [None]}, {"uplinks": [{"families": []}]}],
    ids=["no-uplinks", "null", "null-uplink", "families-list"],
)
def test_a_document_of_another_shape_is_not_routed(status: dict[str, Any]) -> None:
    assert not any_routed(status)


# -- the command: an exit status and nothing else -----------------------------------------


def test_check_exits_0_silently_while_an_uplink_is_routed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "control.sock"
    status = document(one_up_one_down())
    with serving(path, lambda: status):
        assert status_cli(capsys, "--check", "--socket", str(path)) == (0, "", "")
        assert status_cli(capsys, "--check", "--family", "ipv4", "--socket", str(path)) == (
            0,
            "",
            "",
        )
        # Managed in IPv4 only: no uplink is routed in IPv6.
        assert status_cli(capsys, "--check", "--family", "ipv6", "--socket", str(path)) == (
            1,
            "",
            "",
        )


def test_check_exits_1_silently_when_every_uplink_is_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    driver = one_up_one_down()
    driver.fail("wan2")
    path = tmp_path / "control.sock"
    status = document(driver)
    with serving(path, lambda: status):
        assert status_cli(capsys, "--check", "--socket", str(path)) == (1, "", "")


def test_check_per_family_on_a_dual_stack_box(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "control.sock"
    status = document(dual_stack_with_ipv6_down())
    with serving(path, lambda: status):
        assert status_cli(capsys, "--check", "--socket", str(path))[0] == 0
        assert status_cli(capsys, "--check", "--family", "ipv4", "--socket", str(path))[0] == 0
        assert status_cli(capsys, "--check", "--family", "ipv6", "--socket", str(path))[0] == 1


def test_check_without_a_daemon_is_non_zero_and_silent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "control.sock"
    assert status_cli(capsys, "--check", "--socket", str(missing)) == (3, "", "")
    conf = tmp_path / "config.json"
    conf.write_text('{"control_socket": null}')
    assert status_cli(capsys, "--check", "--config", str(conf)) == (3, "", "")


def test_check_when_the_daemon_answers_with_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("view exploded")

    path = tmp_path / "control.sock"
    with serving(path, broken):
        assert status_cli(capsys, "--check", "--socket", str(path)) == (1, "", "")


def test_family_needs_check_and_check_excludes_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = status_cli(capsys, "--family", "ipv4")
    assert (code, out) == (2, "")
    assert err == "pingu status: error: --family is for --check only\n"
    with pytest.raises(SystemExit) as raised:
        status_cli(capsys, "--check", "--json")
    assert raised.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        status_cli(capsys, "--check", "--family", "ipv5")
    assert "invalid choice: 'ipv5'" in capsys.readouterr().err


def test_check_loads_none_of_the_daemons_libraries(tmp_path: Path) -> None:
    """Fast for a track_script run every few seconds: the check imports only what it needs
    (not pyroute2, scapy, prometheus_client or the dependency injector)."""
    probe = (
        "import sys\n"
        "from pingu.entrypoints import cli\n"
        f"code = cli.main(['status', '--check', '--socket', {str(tmp_path / 'none')!r}])\n"
        "heavy = {'pyroute2', 'scapy', 'prometheus_client', 'dependency_injector'}\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "3 []\n"
    assert done.stderr == ""


def test_the_checks_default_socket_is_the_configurations() -> None:
    assert status_command.DEFAULT_CONTROL_SOCKET == settings.DEFAULT_CONTROL_SOCKET
