"""The command line: check-config, --version, the seed's own form, and `demo`'s guards."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

import pytest

from pingu import __version__
from pingu.entrypoints import cli

GOOD = '{"host": "203.0.113.10", "interfaces": {"wan1": {"metric": 100}}}'


def test_check_config_ok_prints_effective_settings(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.json"
    path.write_text(GOOD)
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert '"max_lost": 2' in out
    assert "wan1: dead uplink detected within" in out


def test_check_config_errors_exit_non_zero_without_traceback(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"host": "203.0.113.10", "interfaces": {"wan1": {"metric": -1}}}')
    assert cli.main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "interfaces.wan1.metric" in err
    assert "Traceback" not in err


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_seed_command_line_runs_the_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, bool]] = []

    def fake_run(config: str, verbose: bool) -> int:
        calls.append((config, verbose))
        return 0

    from pingu.entrypoints import runtime

    monkeypatch.setattr(runtime, "run_daemon", fake_run)
    assert cli.main(["--config", "config.json", "-v"]) == 0
    assert cli.main(["run", "--config", "other.json"]) == 0
    assert calls == [("config.json", True), ("other.json", False)]


def test_no_command_prints_help(capsys) -> None:
    assert cli.main([]) == 2
    assert "check-config" in capsys.readouterr().err


# ---------------------------------------------------------------------- pingu demo


def test_demo_without_root_says_how_and_exits_2(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "pingu demo needs root: it creates network namespaces; run: sudo pingu demo" in err
    assert "Traceback" not in err


def test_demo_step_pause_is_bounded(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--step-pause", "-1"])
    assert exit_info.value.code == 2
    assert "--step-pause" in capsys.readouterr().err


def test_demo_passes_its_pause_to_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    from pingu.entrypoints import demo

    pauses: list[float] = []

    def fake_run_demo(out: TextIO, step_pause: float) -> int:
        pauses.append(step_pause)
        return 0

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert cli.main(["demo", "--step-pause", "0.5"]) == 0
    assert cli.main(["demo"]) == 0
    assert pauses == [0.5, 3.0]


def test_demo_route_table_shows_owner_and_the_route_in_use() -> None:
    from pingu.entrypoints.demo import route_table
    from pingu.lab import Route

    def route(oif: str, gateway: str | None, metric: int, proto: int) -> Route:
        return Route("0.0.0.0", 0, gateway, oif, metric, proto, scope=0, table=254)

    rows = route_table([route("ppp0", None, 300, 136), route("wan2", "100.64.2.1", 200, 136)])
    assert rows[0].split() == ["uplink", "gateway", "metric", "proto", "owner"]
    assert rows[1].split() == ["wan2", "100.64.2.1", "200", "136", "pingu", "<-", "in", "use"]
    assert rows[2].split() == ["ppp0", "-", "(p2p)", "300", "136", "pingu"]
    dhcp = route_table([route("wan1", "100.64.1.1", 1024, 16), route("ppp0", None, 1026, 3)])
    assert dhcp[1].split()[3:] == ["dhcp", "DHCP", "client", "<-", "in", "use"]
    assert dhcp[2].split()[4:] == ["boot", "PPP", "client"]
    assert route_table([]) == ["(no default route: this box cannot reach the internet)"]


def test_demo_starts_the_daemon_as_this_pingu(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from pingu.entrypoints import demo

    assert demo.daemon_command() == [sys.executable, "-m", "pingu"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert demo.daemon_command() == [sys.executable]
