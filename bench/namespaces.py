"""Sockets that belong to one of the lab's network namespaces, made without ever moving
this process (or its main thread) out of the root namespace."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from pingu.lab import _netns

T = TypeVar("T")
ENTER_TIMEOUT_S = 10.0


def in_namespace(ns: str, make: Callable[[], T]) -> T:
    """Call ``make`` on a short-lived thread that has entered namespace ``ns``.

    A socket is tied to the namespace it was created in, so what ``make`` returns keeps
    working there from any thread, while the caller never leaves the root namespace."""
    box: dict[str, T] = {}
    failure: list[BaseException] = []

    def work() -> None:
        try:
            _netns.enter_thread(ns)
            box["value"] = make()
        except BaseException as error:  # handed to the caller below
            failure.append(error)

    thread = threading.Thread(target=work, name=f"enter {ns}", daemon=True)
    thread.start()
    thread.join(ENTER_TIMEOUT_S)
    if thread.is_alive():
        raise TimeoutError(f"entering namespace {ns} took more than {ENTER_TIMEOUT_S} s")
    if failure:
        raise failure[0]
    return box["value"]


def udp_sink(ns: str, address: str, port: int) -> socket.socket:
    """A UDP socket bound in ``ns`` that is never read: once its small buffer is full the
    kernel drops what arrives, quietly (no ICMP port-unreachable storm)."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind((address, port))
        return sock

    return in_namespace(ns, make)
