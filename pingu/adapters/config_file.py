"""Reads a configuration file: JSON with comments, strict about duplicates, scripts checked."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path

from pingu.domain.config import (
    SCRIPT_KEYS,
    Config,
    build_config,
    join_path,
    normalized_keys,
    script_argv,
    script_text_problem,
)
from pingu.domain.errors import ConfigError, ConfigProblem


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate the file at `path`; raise ConfigError with every problem."""
    raw = parse_config_text(_read(Path(path)))
    problems = list(_duplicate_keys(raw, ""))
    config: Config | None = None
    try:
        config = build_config(raw)
    except ConfigError as error:
        problems.extend(error.problems)
    problems.extend(_script_problems(raw))
    if problems or config is None:
        raise ConfigError(problems)
    if config.gateways_file is not None:
        # py-pingu's relative "./gw.json" is relative to the directory pingu starts in.
        config = dataclasses.replace(config, gateways_file=os.path.abspath(config.gateways_file))
    return config


def parse_config_text(text: str) -> object:
    """JSON with `//` and `/* */` comments; a syntax error is a ConfigError with line/column."""
    stripped = strip_json_comments(text)
    try:
        return json.loads(stripped, object_pairs_hook=_JsonObject.from_pairs)
    except json.JSONDecodeError as error:
        rule = f"invalid JSON: {error.msg}{_syntax_hint(stripped, error.pos)}"
        where = f"line {error.lineno}, column {error.colno}"
        raise ConfigError([ConfigProblem(where, _line(text, error.lineno), rule)]) from None


def strip_json_comments(text: str) -> str:
    """`text` with every comment outside strings blanked out.

    Comment characters become spaces and their newlines stay, so that JSON syntax errors
    still point at the right line and column of the file.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            out.append(" " * (end - i))
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end == -1:
                line = text.count("\n", 0, i) + 1
                column = i - text.rfind("\n", 0, i)
                raise ConfigError(
                    [ConfigProblem(f"line {line}, column {column}", "/*", "comment never closed")]
                )
            out.append("".join(c if c == "\n" else " " for c in text[i : end + 2]))
            i = end + 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """The index just past the string opening at `start` (or the end of its line)."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] in '"\n':
            return i + 1 if text[i] == '"' else i
        else:
            i += 1
    return len(text)


class _JsonObject(dict[str, object]):
    """A parsed JSON object that remembers the keys given more than once."""

    duplicates: list[tuple[str, object]]

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, object]]) -> _JsonObject:
        obj = cls()
        obj.duplicates = []
        for key, value in pairs:
            if key in obj:
                obj.duplicates.append((key, value))
            obj[key] = value
        return obj


def _duplicate_keys(value: object, path: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    if isinstance(value, _JsonObject):
        problems.extend(
            ConfigProblem(
                join_path(path, key),
                later,
                "key given more than once in the same object (only the last would count)",
            )
            for key, later in value.duplicates
        )
        for key, item in value.items():
            problems.extend(_duplicate_keys(item, join_path(path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems.extend(_duplicate_keys(item, join_path(path, index)))
    return problems


def _script_problems(raw: object) -> list[ConfigProblem]:
    """Filesystem checks of every absolute script path the file names."""
    top = normalized_keys(raw, ("interfaces",)) if isinstance(raw, dict) else {}
    interfaces = top.get("interfaces")
    if not isinstance(interfaces, dict):
        return []
    problems: list[ConfigProblem] = []
    for name, settings in interfaces.items():
        for key in SCRIPT_KEYS:
            given = normalized_keys(settings, SCRIPT_KEYS) if isinstance(settings, dict) else {}
            script = given.get(key)
            if isinstance(script, str) and "\0" not in script and not script_text_problem(script):
                why = script_problem(script_argv(script)[0])
                if why is not None:
                    path = join_path(join_path("interfaces", str(name)), key)
                    problems.append(ConfigProblem(path, script, why))
    return problems


def script_problem(path: str) -> str | None:
    """Why root should not run the script at `path`, or None when it may."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as error:
        return f"cannot be checked: {error.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return "must be a regular file"
    if not os.access(path, os.X_OK):
        return "must be executable (chmod +x)"
    if info.st_mode & 0o022:
        mode = stat.S_IMODE(info.st_mode)
        return (
            f"must not be writable by group or others (mode {mode:04o}): "
            "pingu runs it as root (chmod go-w)"
        )
    return None


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        rule = f"cannot read the configuration file: {error.strerror or error}"
        raise ConfigError([ConfigProblem("", str(path), rule)]) from None
    except UnicodeDecodeError as error:
        rule = f"the configuration file is not UTF-8 text (byte {error.start})"
        raise ConfigError([ConfigProblem("", str(path), rule)]) from None


def _line(text: str, lineno: int) -> str:
    lines = text.splitlines()
    return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


def _syntax_hint(stripped: str, pos: int) -> str:
    """Point at the most common hand-editing mistake: a comma before a closing bracket."""
    before = stripped[:pos].rstrip()
    after = stripped[pos:].lstrip()
    if before.endswith(",") and after[:1] in ("}", "]"):
        return " (a trailing comma before a closing bracket?)"
    return ""
