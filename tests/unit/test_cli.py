"""The command line: check-config, --version, and the seed's own form."""

from __future__ import annotations

from pathlib import Path

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
