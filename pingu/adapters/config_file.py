"""Reads a configuration file: JSON with comments, strict about duplicates, scripts checked.

The file is root's input, but it is read by a daemon that must not die or hang on it:
only a regular file is read (a FIFO would block, /dev/zero never ends), at most
MAX_CONFIG_BYTES of it, and parsing is bounded in nesting, number length and the size of
every object and list, so that whatever the file holds is a ConfigError with a message,
never a traceback, and a reload is read off the event loop with a time limit
(`ConfigReloader`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import re
import stat
from collections.abc import Callable

from pingu.adapters import json_limits
from pingu.adapters.safe_files import BoundedWorker, UntrustedPath, check_executable, file_kind
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

MAX_CONFIG_BYTES = 1024 * 1024
MAX_DEPTH = 20  # a configuration nests 4 levels deep (interfaces.wan1.host[0])
MAX_MEMBERS = 1000  # keys of one object, items of one list: far more than any uplink count
RELOAD_TIMEOUT_S = 10.0


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate the file at `path`; raise ConfigError with every problem."""
    raw = parse_config_text(read_config_text(path))
    size = _size_problems(raw)
    if size:
        raise ConfigError(size)
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


def read_config_text(path: str | os.PathLike[str]) -> str:
    """The text of the configuration file at `path`: a regular file of at most
    MAX_CONFIG_BYTES of UTF-8 (a leading BOM is dropped); a ConfigError otherwise."""
    where = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; a regular file ignores it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as error:
        rule = f"cannot read the configuration file: {error.strerror or error}"
        raise ConfigError([ConfigProblem("", where, rule)]) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            rule = (
                f"cannot read the configuration file: it is {file_kind(info)}, not a regular file"
            )
            raise ConfigError([ConfigProblem("", where, rule)])
        data = _read_at_most(fd, where)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        rule = f"the configuration file is not UTF-8 text (byte {error.start})"
        raise ConfigError([ConfigProblem("", where, rule)]) from None


def _read_at_most(fd: int, where: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        rule = f"cannot read the configuration file: {error.strerror or error}"
        raise ConfigError([ConfigProblem("", where, rule)]) from None
    if size > MAX_CONFIG_BYTES:
        rule = f"the configuration file is larger than {MAX_CONFIG_BYTES // 1024} KiB"
        raise ConfigError([ConfigProblem("", where, rule)])
    return b"".join(chunks)


class ConfigReloader:
    """Reads the configuration for a reload off the event loop, one read at a time, each
    within `timeout_s`: the daemon goes on deciding while the file is read, and a read
    that hangs (a hung network file system) is a rejected reload, not a frozen daemon.

    `request(path, done)` starts a read and returns None; `done` is called on the loop
    when it ends, and the next `request` returns its result (a Config, or the ConfigError
    to report). A request while a read is under way is remembered: the file may have
    changed after that read began, so another read follows it.
    """

    def __init__(
        self,
        load: Callable[[str], Config] = load_config,
        timeout_s: float = RELOAD_TIMEOUT_S,
    ) -> None:
        self._load = load
        self._worker = BoundedWorker("reading the configuration", timeout_s)
        self._reading: asyncio.Task[Config | ConfigError] | None = None
        self._again = False

    def request(self, path: str, done: Callable[[], None]) -> Config | ConfigError | None:
        reading = self._reading
        if reading is not None and not reading.done():
            self._again = True
            return None
        if reading is None:
            self._start(path, done)
            return None
        self._reading = None
        if self._again:
            self._again = False
            self._start(path, done)
        return reading.result()

    def _start(self, path: str, done: Callable[[], None]) -> None:
        self._reading = asyncio.create_task(self._read(path), name="config-reload")
        self._reading.add_done_callback(lambda _: done())

    async def _read(self, path: str) -> Config | ConfigError:
        try:
            return await asyncio.to_thread(self._worker.call, functools.partial(self._load, path))
        except ConfigError as error:
            return error
        except TimeoutError as error:
            return ConfigError([ConfigProblem("", path, str(error))])


def parse_config_text(text: str) -> object:
    """JSON with `//` and `/* */` comments, within limits (nesting, long numbers); a syntax
    error or a broken limit is a ConfigError with the line and column."""
    stripped = strip_json_comments(text)
    try:
        return json_limits.loads(
            stripped, max_depth=MAX_DEPTH, object_pairs_hook=_JsonObject.from_pairs
        )
    except json_limits.JsonLimitError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise ConfigError([ConfigProblem(where, _line(text, error.lineno), error.msg)]) from None
    except json.JSONDecodeError as error:
        rule = f"invalid JSON: {error.msg}{_syntax_hint(stripped, error.pos)}"
        where = f"line {error.lineno}, column {error.colno}"
        raise ConfigError([ConfigProblem(where, _line(text, error.lineno), rule)]) from None


# Where a comment or a string starts; the text between two of them is copied as it is, so
# the work grows with the comments and strings, not with every character of the file.
_TOKEN = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"?|//[^\n]*|/\*.*?\*/|/\*', re.DOTALL)
_NOT_NEWLINE = re.compile(r"[^\n]")


def strip_json_comments(text: str) -> str:
    """`text` with every comment outside strings blanked out.

    Comment characters become spaces and their newlines stay, so that JSON syntax errors
    still point at the right line and column of the file.
    """
    out: list[str] = []
    copied = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token.startswith('"'):
            continue  # a string: copied with the text around it
        start = match.start()
        if token == "/*":
            line = text.count("\n", 0, start) + 1
            column = start - text.rfind("\n", 0, start)
            raise ConfigError(
                [ConfigProblem(f"line {line}, column {column}", "/*", "comment never closed")]
            )
        out.append(text[copied:start])
        out.append(_NOT_NEWLINE.sub(" ", token))
        copied = match.end()
    out.append(text[copied:])
    return "".join(out)


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
    """Why root should not run the script at `path`, or None when it may (see safe_files:
    root-owned, not writable by others, and so is every directory on its way)."""
    try:
        check_executable(path)
    except UntrustedPath as error:
        return str(error)
    return None


def _size_problems(raw: object) -> list[ConfigProblem]:
    """Objects and lists too big to be a configuration, and text that is not Unicode.

    Checked before validation, whose cost would otherwise grow with the square of a list
    of a hundred thousand targets; one problem is enough to say what is wrong.
    """
    pending: list[tuple[str, object]] = [("", raw)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if not _is_unicode(value):
                return [ConfigProblem(path, value, _NOT_UNICODE)]
            continue
        items: list[tuple[str, object]]
        if isinstance(value, dict):
            for key in value:
                if isinstance(key, str) and not _is_unicode(key):
                    return [ConfigProblem(path, key, _NOT_UNICODE)]
            items = [(join_path(path, str(key)), item) for key, item in value.items()]
        elif isinstance(value, list):
            items = [(join_path(path, index), item) for index, item in enumerate(value)]
        else:
            continue
        if len(items) > MAX_MEMBERS:
            kind = "object" if isinstance(value, dict) else "list"
            article = "an" if kind == "object" else "a"
            rule = f"{article} {kind} of {len(items)} members (at most {MAX_MEMBERS})"
            return [ConfigProblem(path, _Elided(kind, len(items)), rule)]
        pending.extend(items)
    return []


_NOT_UNICODE = "not valid Unicode text (a lone surrogate escape such as \\ud800)"


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class _Elided:
    """A value too big to show in a problem; its repr says what it was."""

    def __init__(self, kind: str, size: int) -> None:
        self.text = f"<{kind} of {size} members>"

    def __repr__(self) -> str:
        return self.text


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
