"""The table of settings: one entry per key, which the model, the reload rules and the
README's tables follow."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path

import pytest

from pingu.domain.config import (
    REJECTS_RELOAD,
    SCRIPT_KEYS,
    Config,
    UplinkConfig,
    build_config,
    effective_settings,
    keep_running,
    restart_only,
)
from pingu.domain.config import settings as table
from pingu.domain.config.docs import Row, markdown_table, per_interface_rows, top_level_rows
from pingu.domain.config.settings import Reload, Setting, Where
from pingu.entrypoints import settings_tables
from pingu.entrypoints.runtime import Daemon
from tests.unit.fakes import TARGET, config, uplink
from tests.unit.test_runtime import daemon_with, run_until

README = Path(__file__).parents[2] / "README.md"
# Fields that are no key of the file: the uplink's name is its key in "interfaces".
DERIVED = {"name", "warnings"}


def model_fields(model: type) -> dict[str, dataclasses.Field[object]]:
    return {f.name: f for f in dataclasses.fields(model) if f.name not in DERIVED}


def test_the_readme_tables_are_the_settings_table() -> None:
    text = README.read_text(encoding="utf-8")
    assert settings_tables.with_tables(text) == text, (
        "README.md's tables of settings differ from pingu/domain/config/settings.py: "
        f"run `{settings_tables.COMMAND}`"
    )


@pytest.mark.parametrize(
    ("model", "settings"),
    [
        (Config, [s for s in table.TOP_LEVEL if s.where is Where.TOP]),
        (UplinkConfig, list(table.PER_INTERFACE)),
    ],
)
def test_every_setting_is_a_model_field_and_every_field_a_setting(model, settings) -> None:
    fields = model_fields(model)
    assert sorted(s.attribute for s in settings) == sorted(fields)
    for setting in settings:
        declared = fields[setting.attribute].default
        if declared is dataclasses.MISSING:
            continue  # required in the model (proto: Config is always built whole)
        assert declared == setting.default, setting.key


def test_both_levels_share_one_entry_per_key() -> None:
    top = {s.key: s for s in table.TOP_LEVEL}
    per_interface = {s.key: s for s in table.PER_INTERFACE}
    assert len(top) == len(table.TOP_LEVEL)
    assert len(per_interface) == len(table.PER_INTERFACE)
    for key in top.keys() & per_interface.keys():
        assert top[key] is per_interface[key]
        assert top[key].where is Where.BOTH
    assert {s.where for s in top.values()} == {Where.TOP, Where.BOTH}
    assert {s.where for s in per_interface.values()} == {Where.UPLINK, Where.BOTH}


@pytest.mark.parametrize("setting", table.TOP_LEVEL + table.PER_INTERFACE, ids=lambda s: s.key)
def test_every_default_is_a_value_its_kind_accepts(setting: Setting) -> None:
    if setting.default is table.REQUIRED or setting.default is None:
        assert setting.default is not None or setting.nullable
        return
    said = setting.kind.show(setting.default)
    assert setting.kind.read(said, setting.key) == setting.default


def test_a_setting_of_both_levels_says_how_it_reads_per_interface() -> None:
    with pytest.raises(ValueError, match="both levels"):
        Setting("x", Where.BOTH, table.TOP_LEVEL[0].kind, 1, "", "")
    with pytest.raises(ValueError, match="both levels"):
        Setting(
            "x", Where.TOP, table.TOP_LEVEL[0].kind, 1, "", "", per_interface=table.Inherited("y")
        )
    with pytest.raises(ValueError, match="top level's own"):
        Setting("x", Where.UPLINK, table.TOP_LEVEL[0].kind, 1, "", "", reload=Reload.RESTART)


def test_the_script_keys_are_the_script_settings() -> None:
    assert SCRIPT_KEYS == ("reset_script", "up_script", "down_script")


# --- reload ---------------------------------------------------------------------------


def running() -> Config:
    return build_config({"host": "192.0.2.1", "interfaces": {"wan1": {"metric": 100}}})


def test_restart_only_names_the_changed_keys_a_reload_cannot_apply_in_the_table_order() -> None:
    old = running()
    new = dataclasses.replace(
        old,
        metrics=("127.0.0.1", 9100),
        state_file=None,
        proto=200,
        script_timeout=5.0,
        uplinks=(UplinkConfig(name="wan2", metric=1, targets=("192.0.2.9",)),),
    )
    assert restart_only(old, old) == []
    assert restart_only(old, new) == ["proto", "state_file", "metrics"]
    assert sorted(REJECTS_RELOAD) == ["proto"]


def test_keep_running_keeps_the_running_values_of_the_restart_only_keys() -> None:
    old = running()
    new = dataclasses.replace(old, metrics=("127.0.0.1", 9100), script_timeout=5.0)
    kept = keep_running(new, old, restart_only(old, new))
    assert kept == dataclasses.replace(old, script_timeout=5.0)


# --- documentation --------------------------------------------------------------------


def test_the_rows_say_defaults_as_the_file_would() -> None:
    top = {row.key: row for row in top_level_rows()}
    assert top["host"].default == "required (unless every interface sets its own)"
    assert top["period"].default == "5"
    assert top["initial_state"].default == '`"up"`'
    assert top["control_group"].default == "`null`"
    assert top["interfaces"].default == "required"
    assert top["proto"].reload is Reload.REJECTS
    per_interface = {row.key: row for row in per_interface_rows()}
    assert per_interface["period"].default == "top-level `period`"
    assert per_interface["host"].unit == "address or list"
    assert per_interface["period"].unit == "s"
    assert per_interface["metric"].default == "required"


def test_a_markdown_cell_keeps_its_bars_out_of_the_table() -> None:
    text = markdown_table([Row("k", "a|b", "s", "x", Reload.APPLIES)])
    assert text.splitlines()[-1] == "| `k` | a\\|b | s | x |"


def test_the_tables_are_written_between_their_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# t\n<!-- settings:top -->\nstale row\n<!-- /settings:top -->\n\n"
        "<!-- settings:per-interface -->\n<!-- /settings:per-interface -->\nend\n"
    )
    assert settings_tables.main([str(readme)]) == 0
    text = readme.read_text()
    assert "stale row" not in text
    assert markdown_table(top_level_rows()) + "<!-- /settings:top -->" in text
    assert text.endswith(
        markdown_table(per_interface_rows()) + "<!-- /settings:per-interface -->\nend\n"
    )
    assert settings_tables.main([str(readme)]) == 0
    assert readme.read_text() == text


def test_a_readme_without_markers_is_an_error(tmp_path: Path, capsys) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# t\n")
    assert settings_tables.main([str(readme)]) == 1
    assert "no <!-- settings:top --> ... <!-- /settings:top -->" in capsys.readouterr().err


def test_a_reload_that_changes_proto_is_rejected_and_the_running_configuration_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pingu")
    cfg = dataclasses.replace(config(uplink("wan1", 100)), state_file=None)
    path = tmp_path / "config.json"
    moved = {"host": TARGET, "proto": 200, "state_file": None, "metrics": 9100}
    path.write_text(json.dumps({**moved, "interfaces": {"wan1": {"metric": 100}}}))

    async def reloaded() -> Daemon:
        daemon, _ = daemon_with(cfg, config_path=str(path))
        daemon.request_reload()  # handled once the daemon has started
        await run_until(daemon, lambda: "rejected" in caplog.text)
        return daemon

    assert asyncio.run(reloaded()).config == cfg
    assert (
        f"reload of {path} rejected: proto changed (136 -> 200), which needs a restart; "
        "the running configuration stays"
    ) in caplog.text
    assert "take effect at the next restart" not in caplog.text


def test_check_config_shows_every_top_level_key_and_the_metrics_address_as_written() -> None:
    raw = {"host": "192.0.2.1", "metrics": 9100, "interfaces": {"wan1": {"metric": 100}}}
    shown = effective_settings(build_config(raw))
    assert list(shown) == [s.key for s in table.TOP_LEVEL if s.where is Where.TOP]
    assert shown["metrics"] == "127.0.0.1:9100"
