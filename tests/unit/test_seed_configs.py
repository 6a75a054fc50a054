"""py-pingu's own configurations run unchanged: the seed README's example and the seed
repository's config.json pass `pingu check-config` (their placeholder reset scripts replaced
by one that exists), and what pingu takes from py-pingu's gateways file is shown."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from pingu.entrypoints.check_config import check_config
from tests.unit.test_config_file import SEED_EXAMPLE, executable

SEED_REPOSITORY_CONFIG = {
    "host": "8.8.8.8",
    "proto": 136,
    "gateways_file": "./gw.json",
    "interfaces": {
        "eno2": {
            "metric": 88,
            "count": 10,
            "max_lost": 5,
            "max_delay": 100,
            "period": 20,
            "reset_script": "/workspace/reset.sh",
            "reset_script_grace_period": 600,
        },
        "wlo1": {"metric": 50, "period": 50},
    },
}


def checked(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return check_config(str(path), out, err), out.getvalue(), err.getvalue()


def test_the_seed_readme_example_passes(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(SEED_EXAMPLE.replace("/path/to/script.sh", executable(tmp_path)))
    code, out, err = checked(path)
    assert (code, err) == (0, "")
    effective = json.loads(out[: out.index("\n}\n") + 2])
    eno2 = effective["interfaces"]["eno2"]
    assert (eno2["metric"], eno2["count"], eno2["max_lost"], eno2["period"]) == (100, 10, 5, 10)
    assert eno2["reset_script_grace_period"] == 60  # the key with a trailing space, read
    assert "warning: 'interfaces.eno2.reset_script_grace_period ' read as" in out


def test_the_seed_repository_config_passes_and_shows_the_gateways_it_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = json.loads(json.dumps(SEED_REPOSITORY_CONFIG))
    raw["interfaces"]["eno2"]["reset_script"] = executable(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    monkeypatch.chdir(tmp_path)  # "./gw.json" is relative to where pingu starts
    (tmp_path / "gw.json").write_text(json.dumps({"eno2": "192.0.2.1", "wlo1": None}))
    code, out, err = checked(tmp_path / "config.json")
    assert (code, err) == (0, "")
    gw = os.path.join(tmp_path, "gw.json")
    assert f'"gateways_file": "{gw}"' in out
    assert (
        f"gateways_file {gw}: eno2 192.0.2.1, wlo1 none (point-to-point); taken at start-up"
    ) in out
    effective = json.loads(out[: out.index("\n}\n") + 2])
    assert effective["interfaces"]["eno2"]["max_lost"] == 5
    assert effective["interfaces"]["wlo1"]["period"] == 50


def test_a_missing_or_broken_gateways_file_is_said_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = {**SEED_REPOSITORY_CONFIG, "interfaces": {"wlo1": {"metric": 50}}}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    monkeypatch.chdir(tmp_path)
    code, out, _ = checked(tmp_path / "config.json")
    assert code == 0
    assert "nothing to take (pingu writes it as it learns gateways)" in out
    (tmp_path / "gw.json").write_text('{"wlo1": "not an address"}')
    code, out, _ = checked(tmp_path / "config.json")
    assert code == 0
    assert "warning: gateways_file" in out
    assert "would be ignored: wlo1: 'not an address' is not an IPv4 address" in out
