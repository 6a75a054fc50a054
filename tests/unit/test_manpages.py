"""The manual pages pingu(8) and pingu.json(5): every command, option and setting is in
them (each setting with its type, default, unit and reload behaviour), and groff and man
render them without a warning."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from pingu.adapters.config_file import parse_config_text
from pingu.domain.config import build_config
from pingu.domain.config.explain import shown
from pingu.domain.config.settings import (
    PER_INTERFACE,
    REQUIRED,
    TOP_LEVEL,
    Setting,
)
from pingu.entrypoints import manpages
from pingu.entrypoints.cli import parser
from pingu.entrypoints.manpages import documented_actions, markdown, text


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("man")
    return {path.name: path for path in manpages.write_pages(directory)}


def rendered(path: Path) -> str:
    """The page as plain text, one paragraph per line (wide, so that nothing wraps)."""
    done = subprocess.run(
        ["groff", "-man", "-Tascii", "-P-c", "-P-b", "-P-u", "-rLL=400n", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout


def entries(page: str, section: str, keys: list[str]) -> dict[str, str]:
    """The paragraphs of `section` tagged with `keys`, in that order: key -> its text (the
    lines from its tag to the next key's, joined)."""
    lines = page.split(f"\n{section}\n", 1)[1].splitlines()
    lines = lines[: next((i for i, line in enumerate(lines) if line[:1].isalpha()), len(lines))]
    starts: list[int] = []
    for key in keys:
        tag = re.compile(rf" {{7}}{re.escape(key)}( |$)")
        after = starts[-1] + 1 if starts else 0
        found = next((i for i in range(after, len(lines)) if tag.match(lines[i])), None)
        assert found is not None, f"{section}: no entry {key} after the previous one"
        starts.append(found)
    ends = [*starts[1:], len(lines)]
    return {
        key: " ".join(" ".join(lines[start:end]).split()[1:])
        for key, start, end in zip(keys, starts, ends, strict=True)
    }


def default_of(setting: Setting) -> str:
    """The default as the file would write it, worked out from the setting itself."""
    if setting.default is REQUIRED:
        return "required"
    return json.dumps(shown(setting, setting.default))


@pytest.mark.parametrize(
    ("section", "settings"),
    [("TOP-LEVEL SETTINGS", TOP_LEVEL), ("PER-INTERFACE SETTINGS", PER_INTERFACE)],
)
def test_every_setting_is_in_pingu_json_5_with_its_type_default_unit_and_reload(
    pages: dict[str, Path], section: str, settings: tuple[Setting, ...]
) -> None:
    found = entries(rendered(pages["pingu.json.5"]), section, [s.key for s in settings])
    for setting in settings:
        body = found[setting.key]
        assert f"Type: {setting.kind.expected}" in body, setting.key
        assert f"Reload: {setting.reload.value}" in body, setting.key
        assert "Unit: " in body, setting.key
        default = re.search(r"Default: (.*?) Unit: ", body)
        assert default, setting.key
        if section == "PER-INTERFACE SETTINGS" and setting.per_interface is not None:
            expected = setting.per_interface.shown or f"top-level {setting.key}"
            assert default.group(1) == expected, setting.key
        elif setting.shown:
            assert default.group(1) == setting.shown.replace("`", ""), setting.key
        else:
            assert default.group(1).startswith(default_of(setting)), setting.key


def test_the_meaning_of_every_setting_is_there(pages: dict[str, Path]) -> None:
    page = " ".join(rendered(pages["pingu.json.5"]).split())
    meanings = [setting.meaning for setting in TOP_LEVEL + PER_INTERFACE]
    meanings += [s.per_interface.meaning for s in PER_INTERFACE if s.per_interface is not None]
    for meaning in meanings:
        plain = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1 (README)", meaning).replace("`", "")
        # -Tascii draws an em dash as "--".
        assert " ".join(plain.replace("\u2014", "--").split()) in page, meaning


def test_the_page_s_example_is_a_valid_configuration() -> None:
    build_config(parse_config_text(manpages._EXAMPLE))


def test_pingu_8_names_every_command_and_option(pages: dict[str, Path]) -> None:
    page = rendered(pages["pingu.8"])
    top = parser()
    commands = manpages._commands(top)
    assert set(commands) == {"check-config", "run", "demo", "status"}
    for name, command in {"": top, **commands}.items():
        if name:
            assert f"pingu {name}" in page
        for action in documented_actions(command):
            for option in action.option_strings:
                assert option in page, f"{name} {option}"
            assert action.help, f"{name} {action.dest}"
            assert action.help in " ".join(page.split()), f"{name} {action.dest}"
    for section in ("SIGNALS", "FILES", "EXIT STATUS", "SEE ALSO"):
        assert f"\n{section}\n" in page
    for signal in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1"):
        assert signal in page
    for path in ("/etc/pingu/config.json", "/var/lib/pingu/state.json", "/run/pingu/control.sock"):
        assert path in page


@pytest.mark.parametrize("name", list(manpages.PAGES))
def test_groff_renders_the_page_without_a_warning(pages: dict[str, Path], name: str) -> None:
    done = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(pages[name])],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0
    assert done.stderr == ""


@pytest.mark.parametrize("name", list(manpages.PAGES))
def test_man_renders_the_page_without_a_warning(pages: dict[str, Path], name: str) -> None:
    done = subprocess.run(
        ["man", "--warnings", "-l", str(pages[name])],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "", "PAGER": "cat"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "pingu" in done.stdout


def test_pages_are_plain_ascii_roff(pages: dict[str, Path]) -> None:
    for path in pages.values():
        source = path.read_text(encoding="ascii")
        assert source.startswith('.\\" Generated by pingu.entrypoints.manpages')
        assert all(not line.startswith("'") for line in source.splitlines())


def test_roff_escapes() -> None:
    assert text("a\\b") == "a\\eb"
    assert text(".hidden\n'quoted") == "\\&.hidden\n\\&'quoted"
    assert text("up -> down") == "up \\(-> down"
    assert text("0-4 \u2014 x") == "0-4 \\(em x"
    assert text("\u00e9") == "\\[u00E9]"
    assert markdown("see `--x` and [Security](#security)") == (
        "see \\fB\\-\\-x\\fR and \\fISecurity\\fR (README)"
    )
    assert markdown("[site](https://example.org/)") == "site <https://example.org/>"
    assert markdown("**bold**") == "\\fBbold\\fR"


def test_main_writes_both_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert manpages.main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pingu.8", "pingu.json.5"]
    assert manpages.main([]) == 2
    capsys.readouterr()
