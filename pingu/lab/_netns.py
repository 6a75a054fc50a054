"""Process plumbing for the lab's helper processes: entering a named namespace, dying with
the parent."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def netns_path(name: str) -> str:
    """Where ``ip netns add NAME`` mounts a named network namespace."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a namespace name: {name!r}")
    return os.path.join(NETNS_RUN_DIR, name)


def open_netns(name: str) -> int:
    """A file descriptor of the named network namespace (close it when done)."""
    return os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace ``fd`` refers to."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def enter(name: str) -> None:
    """Move this (single-threaded) process into the named network namespace for good."""
    fd = open_netns(name)
    try:
        setns(fd)
    finally:
        os.close(fd)


def enter_thread(name: str) -> None:
    """Move the calling thread (only) into the named network namespace, and prove it did."""
    enter(name)
    if os.stat("/proc/thread-self/ns/net").st_ino != os.stat(netns_path(name)).st_ino:
        raise RuntimeError(f"this thread did not enter namespace {name}")


def die_with_parent(parent_pid: int | None) -> None:
    """Ask the kernel to SIGTERM this process when its parent goes, so that a helper
    never outlives a lab whose owner was killed without running its cleanup."""
    if _libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    if parent_pid is not None and os.getppid() != parent_pid:
        # The parent died before prctl took effect.
        raise SystemExit(1)
