"""Which paths root may trust, and how to touch them without being tricked or held up.

pingu runs as root and reads, writes and runs files whose paths come from its
configuration. Whoever can write to a file, or to any directory on the way to it, can
swap it for something else between a check and a use: a script of their own, a symlink
to /etc/shadow, a FIFO that blocks forever. So one rule holds for every path pingu
trusts (scripts, the state file and its directory, the control socket's directory):

- every entry on the path (each directory, each symbolic link, the file itself) is owned
  by root, or by the user pingu runs as;
- no directory on the path is writable by group or others, except one with the sticky
  bit, such as /tmp: there only an entry's owner may rename or remove it, and every
  entry on the path is root's by the first rule;
- the directory that holds the file itself is not writable by group or others at all,
  sticky or not: in /tmp anyone could take the file's name first.

Blocking file operations run on a worker thread with a time limit (`BoundedWorker`), so
a hung file system costs a timeout and a log line, not the daemon.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

MAX_SYMLINKS = 40  # as the kernel: a loop of links is an error, not a hang
_GROUP_OR_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


class UntrustedPath(OSError):
    """A path, or a file on it, that root must not trust; the message says which and why."""


@dataclass(frozen=True)
class TrustedPath:
    """A path whose every directory passed the rule.

    `path` has every symbolic link resolved; `info` is the final entry's lstat (None when
    it does not exist); `directory` is the lstat of the directory that holds it.
    """

    path: str
    info: os.stat_result | None
    directory: os.stat_result


def trusted_owners() -> frozenset[int]:
    """Who may own what pingu trusts: root, and the user pingu runs as."""
    return frozenset({0, os.geteuid()})


def describe_owner(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def owner_problem(info: os.stat_result) -> str | None:
    """Why an entry with this lstat is not owned by a trusted user, or None."""
    if info.st_uid in trusted_owners():
        return None
    return f"owned by {describe_owner(info.st_uid)}, not by root"


def check_path(path: str, *, follow_final: bool, create_mode: int | None = None) -> TrustedPath:
    """Walk `path` from / as the kernel would, checking every entry on the way against
    the rule (the final entry's owner and kind are the caller's to judge).

    Symbolic links are followed (the final one only with `follow_final`), each checked
    where it is. Missing directories are created with `create_mode` when it is given
    (their parents having passed the rule); else a missing directory is a
    FileNotFoundError. Raises UntrustedPath with the reason; other OSErrors when the walk
    itself fails.
    """
    if not path.startswith("/"):
        raise UntrustedPath(f"{path}: not an absolute path")
    if "\0" in path:
        raise UntrustedPath(f"{path!r}: contains a NUL character")
    try:
        path.encode()
    except UnicodeEncodeError:
        raise UntrustedPath(f"{path!r}: not valid text for a file name") from None
    pending = _components(path)
    current, current_info = "/", os.lstat("/")
    _check_directory(current, current_info)
    links = 0
    while pending:
        name = pending.pop()
        if name == "..":
            # Every prefix of `current` was checked on the way down.
            current = os.path.dirname(current)
            current_info = os.lstat(current)
            continue
        candidate = os.path.join(current, name)
        info = _lstat_or_create(candidate, bool(pending), create_mode)
        if info is None:
            _check_holder(current, current_info)
            return TrustedPath(candidate, None, current_info)
        if not pending and not (follow_final and stat.S_ISLNK(info.st_mode)):
            # The final entry: what it must be (and whose) is the caller's to say.
            _check_holder(current, current_info)
            return TrustedPath(candidate, info, current_info)
        problem = owner_problem(info)
        if problem is not None:
            raise UntrustedPath(f"{candidate}: {problem}")
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise UntrustedPath(f"{path}: more than {MAX_SYMLINKS} symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current, current_info = "/", os.lstat("/")
            pending.extend(_components(target))
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(f"{candidate} is not a directory")
        _check_directory(candidate, info)
        current, current_info = candidate, info
    # `path` named a directory ("/", or ending in "/" or ".."): it holds nothing itself.
    return TrustedPath(current, current_info, current_info)


def _components(path: str) -> list[str]:
    """The names of `path`, last first (a stack to pop)."""
    return [part for part in reversed(path.split("/")) if part not in ("", ".")]


def _lstat_or_create(
    candidate: str, is_directory: bool, create_mode: int | None
) -> os.stat_result | None:
    try:
        return os.lstat(candidate)
    except FileNotFoundError:
        if not is_directory:
            return None
        if create_mode is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", candidate) from None
    # Made meanwhile (by root: its parent passed the rule)? It is checked all the same.
    with contextlib.suppress(FileExistsError):
        os.mkdir(candidate, create_mode)
    return os.lstat(candidate)


def _check_directory(path: str, info: os.stat_result) -> None:
    """A directory on the way: owned by a trusted user; writable by others only if sticky."""
    problem = owner_problem(info)
    if problem is not None:
        raise UntrustedPath(f"{path}: {problem}: its owner could replace what is in it")
    if info.st_mode & _GROUP_OR_OTHERS_WRITE and not info.st_mode & stat.S_ISVTX:
        raise UntrustedPath(
            f"{path}: writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}): "
            "anyone who can write there could replace what is in it"
        )


def _check_holder(path: str, info: os.stat_result) -> None:
    """The directory that holds the file: nobody else may write to it, sticky or not."""
    if info.st_mode & _GROUP_OR_OTHERS_WRITE:
        raise UntrustedPath(
            f"{path}: writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}): "
            "pingu keeps and runs files only in a directory that no one else can write"
        )


def file_problem(info: os.stat_result) -> str | None:
    """Why a file with this lstat is not one root may trust (owner, type, mode), or None."""
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file ({file_kind(info)})"
    problem = owner_problem(info)
    if problem is not None:
        return problem
    if info.st_mode & _GROUP_OR_OTHERS_WRITE:
        return f"writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def file_kind(info: os.stat_result) -> str:
    """What an lstat describes, in words."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((word for test, word in kinds if test(info.st_mode)), "an unknown kind of file")


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def read_bounded(fd: int, limit: int) -> bytes:
    """Up to `limit` + 1 bytes from `fd` (one more than allowed tells it is too long)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` or raise: a short write is an error, never a success."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(f"wrote {len(data) - len(view)} of {len(data)} bytes")
        view = view[written:]


class BoundedWorker:
    """Runs blocking file operations on a thread of their own, each within `timeout_s`.

    A call that does not finish in time raises TimeoutError (an OSError) and leaves its
    thread behind (a daemon thread: it never holds up the exit); while that thread still
    hangs, later calls fail at once instead of piling up threads behind a hung mount.
    """

    def __init__(self, what: str, timeout_s: float) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self._hung: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, work: Callable[[], T]) -> T:
        with self._lock:
            if self._hung is not None and self._hung.is_alive():
                raise TimeoutError(
                    f"{self.what}: an earlier operation still hangs; not tried again until "
                    "it ends (a hung file system?)"
                )
            self._hung = None
        outcome: list[tuple[bool, object]] = []

        def run() -> None:
            try:
                outcome.append((True, work()))
            except BaseException as error:  # handed to the caller's thread
                outcome.append((False, error))

        thread = threading.Thread(target=run, name=f"pingu: {self.what}", daemon=True)
        thread.start()
        thread.join(self.timeout_s)
        if thread.is_alive():
            with self._lock:
                self._hung = thread
            raise TimeoutError(
                f"{self.what}: not done within {self.timeout_s:g} s (a hung file system?)"
            )
        ok, value = outcome[0]
        if not ok:
            assert isinstance(value, BaseException)
            raise value
        return value  # type: ignore[return-value]


def check_executable(path: str) -> TrustedPath:
    """The script at `path` as root may run it: the rule for every entry on the way, and a
    regular, executable file, owned by root, that nobody else can write. Raises
    UntrustedPath whose message is the reason, in the words of a configuration problem."""
    try:
        found = check_path(path, follow_final=True)
    except UntrustedPath as error:
        raise UntrustedPath(f"{error}; pingu runs scripts as root") from None
    except FileNotFoundError:
        raise UntrustedPath("no such file") from None
    except OSError as error:
        raise UntrustedPath(f"cannot be checked: {error.strerror or error}") from None
    info = found.info
    if info is None:
        raise UntrustedPath("no such file")
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedPath("must be a regular file")
    if not info.st_mode & 0o111:
        raise UntrustedPath("must be executable (chmod +x)")
    owner = owner_problem(info)
    if owner is not None:
        raise UntrustedPath(f"{owner}: pingu runs it as root (chown root)")
    if info.st_mode & _GROUP_OR_OTHERS_WRITE:
        mode = stat.S_IMODE(info.st_mode)
        raise UntrustedPath(
            f"must not be writable by group or others (mode {mode:04o}): "
            "pingu runs it as root (chmod go-w)"
        )
    return found
