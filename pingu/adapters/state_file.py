"""The state store: one small JSON file, replaced atomically, never trusted blindly.

Root writes this file, so whoever could write beside it could make root write anywhere
(a symlink or a hard link planted at the temporary name), block it (a FIFO), or feed it
gateways to install (a forged file). So the file lives only in a directory that passes
safe_files' rule (root's, and nobody else can write to it or to any directory above it),
the temporary file is created new (O_EXCL, O_NOFOLLOW, a random name), only pingu's own
file is ever read or replaced (a regular root-owned file with one link, not writable by
group or others, holding a JSON object or what is left of one), every write is checked
to the last byte before it replaces the good file, and every operation runs within a
time limit. Anything
unexpected is an error the daemon logs; it then runs without saved state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from pingu.adapters import json_limits
from pingu.adapters.safe_files import (
    BoundedWorker,
    UntrustedPath,
    check_path,
    file_problem,
    read_bounded,
    same_file,
    write_all,
)
from pingu.domain.state import StateError

MAX_STATE_BYTES = 1024 * 1024
MAX_STATE_DEPTH = 16  # the state document nests 3 levels (uplinks.wan1.gateway)
IO_TIMEOUT_S = 5.0
DIRECTORY_MODE = 0o700
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_TEMPORARY_ATTEMPTS = 8
_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LOOK = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC


class UnsafeStateFile(UntrustedPath):
    """Something at the state file's path that pingu must not read or replace."""


class JsonStateFile:
    """Reads and atomically replaces the JSON document at `path` (mode 0600).

    `read()` returns the document, None when there is none, or raises StateError;
    `write(document)` raises an OSError when the document could not be written whole
    (the file that was there is then left as it was).
    """

    def __init__(self, path: str, *, timeout_s: float = IO_TIMEOUT_S) -> None:
        self.path = Path(path)
        self._worker = BoundedWorker(f"state file {path}", timeout_s)

    def read(self) -> object | None:
        """The parsed document; None when there is none; StateError when it is unreadable
        or cannot be trusted."""
        try:
            return self._worker.call(self._read)
        except (UntrustedPath, TimeoutError) as error:
            raise StateError(str(error)) from None
        except OSError as error:
            raise StateError(f"cannot read it: {error.strerror or error}") from None

    def write(self, document: dict[str, object]) -> None:
        """Write a new file beside the target, flush it to disk, rename it over."""
        data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
        self._worker.call(lambda: self._write(data))

    # -- on the worker thread ------------------------------------------------------------

    def _read(self) -> object | None:
        try:
            directory = self._open_directory(create=False)
        except FileNotFoundError:
            return None
        try:
            data = self._read_own(directory)
        finally:
            os.close(directory)
        return None if data is None else parse_document(data)

    def _write(self, data: bytes) -> None:
        if len(data) > MAX_STATE_BYTES:
            raise UnsafeStateFile(f"{self.path}: the document is over {MAX_STATE_BYTES} bytes")
        directory = self._open_directory(create=True)
        try:
            self._check_replaceable(directory)
            temporary = self._write_temporary(directory, data)
            try:
                os.replace(temporary, self.path.name, src_dir_fd=directory, dst_dir_fd=directory)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=directory)
                raise
            with contextlib.suppress(OSError):
                os.fsync(directory)
        finally:
            os.close(directory)

    def _open_directory(self, *, create: bool) -> int:
        """The directory holding the file, opened after the rule was checked on its path."""
        if self.path.name in ("", ".", ".."):
            raise UnsafeStateFile(f"{self.path}: not the path of a file")
        found = check_path(
            str(self.path), follow_final=False, create_mode=DIRECTORY_MODE if create else None
        )
        holder = os.path.dirname(found.path)
        directory = os.open(holder, _OPEN_DIRECTORY)
        if same_file(os.fstat(directory), found.directory):
            return directory
        os.close(directory)
        raise UnsafeStateFile(f"{holder}: changed while it was checked")

    def _read_own(self, directory: int) -> bytes | None:
        """The bytes of pingu's own file in `directory`, None when there is none."""
        try:
            # O_PATH opens nothing: a device node or a FIFO is looked at, never opened.
            handle = os.open(self.path.name, _LOOK, dir_fd=directory)
        except FileNotFoundError:
            return None
        try:
            info = os.fstat(handle)
        finally:
            os.close(handle)
        problem = own_file_problem(info)
        if problem is not None:
            raise UnsafeStateFile(f"{self.path}: {problem}: not pingu's own file, left alone")
        fd = os.open(self.path.name, _OPEN_FILE, dir_fd=directory)
        try:
            if not same_file(os.fstat(fd), info):
                raise UnsafeStateFile(f"{self.path}: changed while it was checked")
            data = read_bounded(fd, MAX_STATE_BYTES)
        finally:
            os.close(fd)
        if len(data) > MAX_STATE_BYTES:
            raise StateError(f"larger than {MAX_STATE_BYTES} bytes")
        return data

    def _check_replaceable(self, directory: int) -> None:
        """Only pingu's own file may be replaced: one it could have written itself, whole
        or cut short (a corrupt state file is replaced), never another program's."""
        try:
            data = self._read_own(directory)
        except StateError as error:
            raise UnsafeStateFile(f"{self.path}: not replaced: {error}") from None
        if data is not None and not looks_like_a_json_object(data):
            raise UnsafeStateFile(
                f"{self.path}: not replaced: it does not hold a JSON object, so it may not "
                "be pingu's; remove it if it is"
            )

    def _write_temporary(self, directory: int, data: bytes) -> str:
        """A new file in `directory` holding exactly `data`, on disk; its name."""
        fd, name = self._create_temporary(directory)
        try:
            try:
                write_all(fd, data)
                os.fsync(fd)
                size = os.fstat(fd).st_size
                if size != len(data):
                    raise OSError(f"the new file holds {size} of {len(data)} bytes")
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=directory)
            raise
        return name

    def _create_temporary(self, directory: int) -> tuple[int, str]:
        # A random name, created new: never a file someone put there to be written into.
        for _ in range(_TEMPORARY_ATTEMPTS):
            name = f".{self.path.name}.{secrets.token_hex(8)}.tmp"
            try:
                return os.open(name, _CREATE, 0o600, dir_fd=directory), name
            except FileExistsError:
                continue
        raise FileExistsError(f"{self.path}: no free temporary name beside it")


def own_file_problem(info: os.stat_result) -> str | None:
    """Why a file with this fstat is not one pingu could have written, or None."""
    problem = file_problem(info)
    if problem is not None:
        return problem
    if info.st_nlink != 1:
        return f"{info.st_nlink} hard links to it"
    return None


def looks_like_a_json_object(data: bytes) -> bool:
    """Whether `data` is empty or starts as a JSON object does: what pingu writes, even
    cut short, and not a password file, a key list or a binary."""
    return data.lstrip()[:1] in (b"", b"{")


def parse_document(data: bytes) -> object:
    """The JSON in `data`, within limits; StateError when it is not JSON or breaks one."""
    try:
        return json_limits.loads(data.decode("utf-8"), max_depth=MAX_STATE_DEPTH)
    except (UnicodeDecodeError, ValueError) as error:
        raise StateError(f"not valid JSON ({error})") from None


class WriteFailures:
    """Logs failures to write a file at a bounded rate: the first one, then a reminder at
    most every `every_s` seconds while they go on, and once when writing works again. A
    full disk must not turn every routing event into an ERROR line."""

    def __init__(self, every_s: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self._failed = 0
        self._told_at: float | None = None

    def failed(self, log: logging.Logger, what: str, error: OSError) -> None:
        now = self.clock()
        self._failed += 1
        if self._told_at is not None and now - self._told_at < self.every_s:
            return
        again = f" ({self._failed} failed writes so far)" if self._failed > 1 else ""
        log.error(
            "%s: cannot write it: %s%s; pingu runs on without saving it (next report in "
            "%g s at the earliest)",
            what,
            error,
            again,
            self.every_s,
        )
        self._told_at = now

    def succeeded(self, log: logging.Logger, what: str) -> None:
        if self._failed:
            log.warning("%s: written again after %d failed writes", what, self._failed)
        self._failed = 0
        self._told_at = None


def boot_id() -> str:
    """This boot's random id (gateways saved in another boot are stale)."""
    try:
        return Path(BOOT_ID_PATH).read_text().strip()
    except OSError:
        return ""
