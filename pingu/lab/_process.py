"""Running commands and helper processes for the lab, and the process-wide safety net
that tears labs down at interpreter exit or on SIGTERM."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from pingu.lab.errors import LabError

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 10.0
PROCESS_STOP_TIMEOUT = 3.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def helper_env() -> dict[str, str]:
    """The environment for a helper process: ours, with this pingu importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    return env


NETNS_LOCK = "/run/lock/pingu-lab-netns.lock"


@contextlib.contextmanager
def netns_lock() -> Iterator[None]:
    """Serialise `ip netns add/del` across processes: concurrent ones can stack the
    /run/netns mounts so that a name opens another namespace than the one it was made for."""
    os.makedirs(os.path.dirname(NETNS_LOCK), exist_ok=True)
    with open(NETNS_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = COMMAND_TIMEOUT,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion within ``timeout``; a failure raises LabError with
    the command's stderr when ``check``."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv)}` took more than {timeout} s") from None
    if check and done.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done


def stop_processes(procs: Sequence[subprocess.Popen[Any]]) -> None:
    """SIGTERM to all, then SIGKILL to those still there after a few seconds; all reaped."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        proc.terminate()
    deadline = time.monotonic() + PROCESS_STOP_TIMEOUT
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(PROCESS_STOP_TIMEOUT)


class Registry:
    """The labs alive in this process, so that they are closed even when no ``with``
    block unwinds: at interpreter exit, and on SIGTERM (turned into SystemExit)."""

    def __init__(self) -> None:
        self._live: dict[int, Callable[[], None]] = {}
        self.prefixes: list[str] = []
        self._lock = threading.Lock()
        self._atexit_installed = False
        self._sigterm_installed = False

    def add(self, key: int, prefix: str, close: Callable[[], None]) -> None:
        with self._lock:
            self._live[key] = close
            self.prefixes.append(prefix)
            if not self._atexit_installed:
                atexit.register(self.close_all)
                self._atexit_installed = True
            if _in_main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _exit_on_signal)
                self._sigterm_installed = True

    def remove(self, key: int) -> None:
        with self._lock:
            self._live.pop(key, None)
            if (
                not self._live
                and self._sigterm_installed
                and _in_main_thread()
                and signal.getsignal(signal.SIGTERM) is _exit_on_signal
            ):
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                self._sigterm_installed = False

    def close_all(self) -> None:
        for close in list(self._live.values()):
            try:
                close()
            except LabError:
                log.exception("lab teardown at exit failed")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    # Unwind like Ctrl-C does, so that every `with Lab()` block tears its lab down.
    raise SystemExit(128 + signum)


class SignalsDeferred:
    """Hold Ctrl-C and SIGTERM during a teardown, so that an impatient second signal
    cannot strand namespaces; a signal received meanwhile is raised right after."""

    _DEFERRED = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.received: list[int] = []
        if _in_main_thread():
            for signum in self._DEFERRED:
                previous = signal.signal(signum, self._note)
                self.previous[signum] = signal.SIG_DFL if previous is None else previous

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        for signum in self.received[:1]:
            signal.raise_signal(signum)
