"""systemd's notify protocol (sd_notify) without libsystemd: readiness, status, watchdog.

Under a `Type=notify` unit systemd puts the address of a datagram socket in
`$NOTIFY_SOCKET`; the daemon sends it newline-separated `KEY=value` assignments. Outside
systemd the variable is unset and every call here does nothing, so the daemon calls these
unconditionally. Sending never raises and never blocks: a lost notification is logged at
debug level, and at worst systemd restarts the service (watchdog) or times out its start.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Mapping, MutableMapping

log = logging.getLogger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


class Notifier:
    """Sends notifications to one systemd notify socket (or nowhere, when `address` is None).

    `address` is `$NOTIFY_SOCKET` as systemd sets it: an absolute path, or `@name` for a
    socket in the abstract namespace.
    """

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._target = _socket_address(self.address) if self.address else None

    @classmethod
    def from_environment(
        cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = False
    ) -> Notifier:
        """The notifier for `$NOTIFY_SOCKET` of `environ` (default `os.environ`).

        `unset=True` removes the variable afterwards, like `sd_notify(1, ...)`, so that child
        processes (reset scripts) do not inherit it and cannot talk to systemd in pingu's name.
        """
        env = os.environ if environ is None else environ
        address = env.get(NOTIFY_SOCKET)
        if unset:
            env.pop(NOTIFY_SOCKET, None)
        return cls(address)

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to notify (pingu runs under a Type=notify unit)."""
        return self._target is not None

    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` assignments in one datagram; True when the socket took it."""
        if self._target is None:
            return False
        message = "\n".join(assignments).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)  # a full queue must not stall the event loop
                sock.sendto(message, self._target)
        except OSError as error:
            log.debug("sd_notify to %s failed: %s (%r)", self.address, error, message)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete: systemd considers the unit started."""
        return self.send("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """A one-line description of what pingu is doing, shown by `systemctl status`."""
        return self.send(*_status(text))

    def watchdog(self) -> bool:
        """Still alive: resets the timer of `WatchdogSec=`."""
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun (routes are being restored)."""
        return self.send("STOPPING=1", *_status(status))

    def reloading(self, status: str | None = None) -> bool:
        """A reload (SIGHUP) has begun; send `ready()` again once it is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))


def watchdog_interval(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """How often to call `watchdog()`, in seconds: half of `WatchdogSec=`, as systemd advises.

    None when the watchdog is off: `$WATCHDOG_USEC` unset, zero or malformed, or
    `$WATCHDOG_PID` naming another process. In a PyInstaller one-file executable the Python
    code runs in a child of the bootloader, which is the process systemd started: the
    bootloader's pid is accepted there too.
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get(WATCHDOG_USEC, ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    watched = env.get(WATCHDOG_PID)
    if watched is not None and not _is_us(watched, os.getpid() if pid is None else pid):
        return None
    return usec / 2_000_000


def ready(status: str | None = None) -> bool:
    """`Notifier.ready` on the socket of the current environment."""
    return Notifier.from_environment().ready(status)


def status(text: str) -> bool:
    """`Notifier.status` on the socket of the current environment."""
    return Notifier.from_environment().status(text)


def watchdog() -> bool:
    """`Notifier.watchdog` on the socket of the current environment."""
    return Notifier.from_environment().watchdog()


def stopping(status: str | None = None) -> bool:
    """`Notifier.stopping` on the socket of the current environment."""
    return Notifier.from_environment().stopping(status)


def reloading(status: str | None = None) -> bool:
    """`Notifier.reloading` on the socket of the current environment."""
    return Notifier.from_environment().reloading(status)


def _socket_address(address: str) -> str | bytes | None:
    """The `sendto` address for `$NOTIFY_SOCKET`, or None for a kind pingu cannot use."""
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    if address.startswith("/"):
        return address
    # systemd >= 254 may also hand out vsock: addresses (for virtual machines).
    log.debug("ignoring NOTIFY_SOCKET %r: neither a path nor an abstract socket", address)
    return None


def _status(text: str | None) -> list[str]:
    if text is None:
        return []
    return ["STATUS=" + " ".join(text.splitlines())]


def _is_us(watched: str, pid: int) -> bool:
    try:
        watched_pid = int(watched)
    except ValueError:
        return False
    if watched_pid == pid:
        return True
    one_file_child = bool(getattr(sys, "frozen", False)) and pid == os.getpid()
    return one_file_child and watched_pid == os.getppid()
