"""The state file under attack (issue 12): whoever can write beside it, a device or a FIFO
at its path, corrupt documents, and a disk that fills up. Real files in tmp_path (a
directory only root can write, under the sticky /tmp), as the daemon would meet them."""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pingu.adapters.state_file import JsonStateFile, WriteFailures
from pingu.domain.state import StateError

NOBODY = 65534
BOUND_S = 20.0  # an operation that does not end within this is hanging: the test fails

GOOD: dict[str, object] = {"kind": "pingu-state", "version": 1, "boot_id": "b", "uplinks": {}}
FORGED: dict[str, object] = {
    "kind": "pingu-state",
    "version": 1,
    "boot_id": "b",
    "uplinks": {"wan1": {"gateway": "192.0.2.66", "metric": 0, "proto": 16, "scope": 0}},
}


@pytest.fixture(autouse=True)
def _root_only() -> None:
    """Files of another user (chown) and device nodes (mknod) need root, as pingu has."""
    if os.geteuid() != 0:
        pytest.skip("plants files of another user and device nodes: needs root")


def bounded(work: Callable[[], object], unblock: Callable[[], None]) -> object:
    """Run `work` on a thread; if it has not ended within BOUND_S, call `unblock` (which
    must release it) and fail: a hang is a failure, not a stuck test run."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND_S)
    if thread.is_alive():
        unblock()
        thread.join(BOUND_S)
        pytest.fail(f"still blocked after {BOUND_S} s")
    return outcome[0]


def release_fifo(path: Path) -> Callable[[], None]:
    """What unblocks a reader or a writer stuck on the FIFO at `path`."""

    def unblock() -> None:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # both ends: whoever waits goes on
        os.close(fd)

    return unblock


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    return directory


def write_good(path: Path) -> None:
    JsonStateFile(str(path)).write(GOOD)


# -- 4. the directory and the file must be root's --------------------------------------


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o722], ids=lambda mode: f"{mode:04o}")
def test_a_directory_others_can_write_is_not_trusted_for_reading_or_writing(
    state_dir: Path, mode: int
) -> None:
    path = state_dir / "state.json"
    path.write_text(json.dumps(FORGED))
    path.chmod(0o600)
    state_dir.chmod(mode)
    store = JsonStateFile(str(path))
    with pytest.raises(StateError, match=r"writable by group or others"):
        store.read()
    with pytest.raises(OSError, match=r"writable by group or others"):
        store.write(GOOD)
    assert json.loads(path.read_text()) == FORGED  # refused, not replaced


def test_a_directory_of_another_user_is_not_trusted(state_dir: Path) -> None:
    os.chown(state_dir, NOBODY, NOBODY)
    store = JsonStateFile(str(state_dir / "state.json"))
    with pytest.raises(StateError, match=r"owned by uid 65534"):
        store.read()
    with pytest.raises(OSError, match=r"owned by uid 65534"):
        store.write(GOOD)
    assert os.listdir(state_dir) == []


def test_an_ancestor_others_can_write_is_not_trusted(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # not sticky: anyone could rename "pingu" and put their own there
    (shared / "pingu").mkdir(mode=0o700)
    with pytest.raises(OSError, match=r"shared: writable by group or others"):
        JsonStateFile(str(shared / "pingu" / "state.json")).write(GOOD)


def test_a_sticky_ancestor_is_trusted_when_what_is_in_it_is_roots(tmp_path: Path) -> None:
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)  # like /tmp: nobody else may rename root's entries
    (sticky / "pingu").mkdir(mode=0o700)
    store = JsonStateFile(str(sticky / "pingu" / "state.json"))
    store.write(GOOD)
    assert store.read() == GOOD
    os.chown(sticky / "pingu", NOBODY, NOBODY)  # but an entry of another user's is not
    with pytest.raises(StateError, match=r"owned by uid 65534"):
        store.read()


def test_a_file_of_another_user_is_neither_read_nor_replaced(state_dir: Path) -> None:
    path = state_dir / "state.json"
    path.write_text(json.dumps(FORGED))
    os.chown(path, NOBODY, NOBODY)
    store = JsonStateFile(str(path))
    with pytest.raises(StateError, match=r"state.json: owned by uid 65534"):
        store.read()
    with pytest.raises(OSError, match=r"owned by uid 65534"):
        store.write(GOOD)
    assert os.stat(path).st_uid == NOBODY
    assert json.loads(path.read_text()) == FORGED


def test_a_symbolic_link_at_the_path_is_not_followed(state_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root's own file\n")
    path = state_dir / "state.json"
    path.symlink_to(victim)
    store = JsonStateFile(str(path))
    with pytest.raises(StateError, match="a symbolic link"):
        store.read()
    with pytest.raises(OSError, match="a symbolic link"):
        store.write(GOOD)
    assert victim.read_text() == "root's own file\n"
    assert path.is_symlink()


def test_a_hard_link_at_the_path_is_not_trusted(state_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(FORGED))
    elsewhere.chmod(0o600)
    os.link(elsewhere, state_dir / "state.json")
    store = JsonStateFile(str(state_dir / "state.json"))
    with pytest.raises(StateError, match="2 hard links"):
        store.read()
    with pytest.raises(OSError, match="2 hard links"):
        store.write(GOOD)
    assert json.loads(elsewhere.read_text()) == FORGED


@pytest.mark.parametrize("planted", ["file", "hard link", "symlink", "fifo"])
def test_what_is_planted_at_the_old_temporary_name_is_never_written_into(
    state_dir: Path, tmp_path: Path, planted: str
) -> None:
    """pingu used `.state.json.PID.tmp`, opened without O_EXCL: a file planted there was
    written into as root and renamed over the state file; a FIFO blocked the write."""
    victim = tmp_path / "victim"
    victim.write_text("root's own file\n")
    path = state_dir / "state.json"
    temporary = state_dir / f".state.json.{os.getpid()}.tmp"
    if planted == "file":
        temporary.write_text("someone else's\n")
        os.chown(temporary, NOBODY, NOBODY)
    elif planted == "hard link":
        os.link(victim, temporary)
    elif planted == "symlink":
        temporary.symlink_to(victim)
    else:
        os.mkfifo(temporary)
    store = JsonStateFile(str(path))
    outcome = bounded(lambda: store.write(GOOD), release_fifo(temporary))
    assert outcome is None, outcome
    assert victim.read_text() == "root's own file\n"
    info = os.stat(path)
    assert (info.st_uid, stat.S_IMODE(info.st_mode), info.st_nlink) == (0, 0o600, 1)
    assert store.read() == GOOD
    assert os.path.lexists(temporary)  # left alone


def test_a_write_leaves_no_temporary_file_and_the_file_is_root_only(state_dir: Path) -> None:
    store = JsonStateFile(str(state_dir / "state.json"))
    for _ in range(3):
        store.write(GOOD)
    assert os.listdir(state_dir) == ["state.json"]


def test_a_missing_directory_is_created_root_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "pingu" / "state.json"
    JsonStateFile(str(path)).write(GOOD)
    for directory in (path.parent, path.parent.parent):
        assert stat.S_IMODE(os.stat(directory).st_mode) & 0o077 == 0


# -- 5. never replace what is not pingu's own regular file -----------------------------


def test_a_character_device_at_the_path_is_left_alone(state_dir: Path) -> None:
    path = state_dir / "state.json"
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # what /dev/null is
    store = JsonStateFile(str(path))
    with pytest.raises(StateError, match="a character device"):
        store.read()
    with pytest.raises(OSError, match="a character device"):
        store.write(GOOD)
    assert stat.S_ISCHR(os.lstat(path).st_mode)


@pytest.mark.parametrize(
    "content",
    [b"root:x:0:0:root:/root:/bin/bash\n", b"ssh-ed25519 AAAA... root@box\n", b"[1, 2]\n"],
    ids=["passwd-like", "authorized_keys-like", "a JSON list"],
)
def test_another_programs_file_at_the_path_is_not_replaced(state_dir: Path, content: bytes) -> None:
    path = state_dir / "state.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(OSError, match="not replaced"):
        JsonStateFile(str(path)).write(GOOD)
    assert path.read_bytes() == content


@pytest.mark.parametrize(
    "content",
    [b"", b'{\n "boot_id": "b",\n "kind": "pingu-st', b'  {"kind": "pingu-state"}', b"{}"],
    ids=["empty", "cut short", "whole", "an object"],
)
def test_pingus_own_file_is_replaced_whole_or_cut_short(state_dir: Path, content: bytes) -> None:
    path = state_dir / "state.json"
    path.write_bytes(content)
    path.chmod(0o644)  # not writable by others: could be pingu's from an older version
    JsonStateFile(str(path)).write(GOOD)
    assert JsonStateFile(str(path)).read() == GOOD
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# -- 6. a FIFO blocks nothing ----------------------------------------------------------


def test_a_fifo_at_the_path_is_refused_at_once_for_reading_and_writing(state_dir: Path) -> None:
    path = state_dir / "state.json"
    os.mkfifo(path, 0o600)
    store = JsonStateFile(str(path))
    read = bounded(store.read, release_fifo(path))
    assert isinstance(read, StateError)
    assert "a FIFO" in str(read)
    written = bounded(lambda: store.write(GOOD), release_fifo(path))
    assert isinstance(written, OSError)
    assert "a FIFO" in str(written)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


def test_an_operation_that_hangs_is_given_up_after_its_timeout(state_dir: Path) -> None:
    """A hung file system, played by a lock the operation waits on."""
    store = JsonStateFile(str(state_dir / "state.json"), timeout_s=0.2)
    hung = threading.Event()
    store._worker.call(lambda: None)  # a call that ends leaves nothing behind
    with pytest.raises(TimeoutError, match=r"not done within 0\.2 s"):
        store._worker.call(hung.wait)
    # While it still hangs, the next one fails at once instead of adding a thread.
    with pytest.raises(TimeoutError, match="still hangs"):
        store.write(GOOD)
    with pytest.raises(StateError, match="still hangs"):
        store.read()
    hung.set()
    for _ in range(1000):
        if not store._worker._hung or not store._worker._hung.is_alive():
            break
        threading.Event().wait(0.01)
    store.write(GOOD)
    assert store.read() == GOOD


# -- 7. corrupt documents are errors, never fatal --------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000,
        b'{"a": ' * 5000 + b"1" + b"}" * 5000,
        b'{"kind": "pingu-state", "version": ' + b"7" * 5000 + b"}",
        b"\xff\xfe{}",
    ],
    ids=["100000 [", "5000 objects deep", "5000 digits", "not UTF-8"],
)
def test_corrupt_documents_are_state_errors(state_dir: Path, content: bytes) -> None:
    path = state_dir / "state.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(StateError, match="not valid JSON"):
        JsonStateFile(str(path)).read()


# -- 8. a full disk: the good file stays, errors are logged at a bounded rate ----------


def test_a_short_write_keeps_the_good_file(state_dir: Path) -> None:
    """A write the disk cuts short (RLIMIT_FSIZE plays a nearly full file system: the
    first write() is short, the next one fails) must not replace the good file."""
    path = state_dir / "state.json"
    write_good(path)
    big = {**GOOD, "padding": "x" * 100_000}
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a file size limit, one write, the outcome through the pipe
        code = 1
        try:
            os.close(read_end)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))
            try:
                JsonStateFile(str(path)).write(big)
                message = "written"
            except OSError as error:
                message = f"OSError: {error}"
            os.write(write_end, message.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert message.startswith("OSError:"), message
    assert JsonStateFile(str(path)).read() == GOOD
    assert os.listdir(state_dir) == ["state.json"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_write_failures_are_logged_once_then_at_a_bounded_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.state")
    clock = Clock()
    failures = WriteFailures(every_s=600.0, clock=clock)
    full = OSError(28, "No space left on device")
    for _ in range(1000):  # an event a second, for a little over 16 minutes
        failures.failed(log, "state file /s.json", full)
        clock.now += 1.0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2  # the first, and one reminder after 600 s
    assert "No space left on device" in errors[0].getMessage()
    assert "(601 failed writes so far)" in errors[1].getMessage()
    failures.succeeded(log, "state file /s.json")
    assert caplog.records[-1].getMessage() == (
        "state file /s.json: written again after 1000 failed writes"
    )
    failures.failed(log, "state file /s.json", full)  # a new spell: told at once
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 3
