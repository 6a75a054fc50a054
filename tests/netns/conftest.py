"""Fixtures for the real-kernel scenarios: root is required, every lab is torn down, and
no namespace of this run may survive the session."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pingu.lab import Lab, Uplink, _netns, prefixes_used
from tests.netns.daemon import Daemons

T = TypeVar("T")
SCENARIO_TIMEOUT = 180.0

LabFactory = Callable[..., Lab]


def namespaces_now() -> list[str]:
    """The named network namespaces that exist right now."""
    done = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=10
    )
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def leftovers(prefixes: Sequence[str]) -> list[str]:
    """Namespaces still present whose name belongs to one of ``prefixes``."""
    return [ns for ns in namespaces_now() if any(ns.startswith(p + "-") for p in prefixes)]


@pytest.fixture(scope="session", autouse=True)
def _root_and_no_leftovers() -> Iterator[None]:
    if os.geteuid() != 0:
        reason = "the netns scenarios need root (network namespaces, raw sockets)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run them as root", pytrace=False)
        pytest.skip(reason)
    yield
    left = leftovers(prefixes_used())
    assert not left, f"namespaces of this run left behind: {left}"


@pytest.fixture
def lab_factory() -> Iterator[LabFactory]:
    """``lab_factory(uplinks, targets=...)`` builds a lab, torn down after the test."""
    with contextlib.ExitStack() as stack:

        def make(uplinks: Sequence[str | Uplink], **kwargs: Any) -> Lab:
            return stack.enter_context(Lab(uplinks, **kwargs))

        yield make


@pytest.fixture
def lab(lab_factory: LabFactory) -> Lab:
    """Two ethernet uplinks, one point-to-point uplink, two targets."""
    return lab_factory(
        ["wan1", "wan2", Uplink("ppp0", "p2p")], targets=["203.0.113.10", "203.0.113.11"]
    )


@pytest.fixture
def dhcp_lab(lab_factory: LabFactory) -> Lab:
    """Two ethernet uplinks whose DHCP clients put in default routes of metric 1024, 1025."""
    lab = lab_factory(["wan1", "wan2"])
    lab.dhcp_add("wan1", metric=1024)
    lab.dhcp_add("wan2", metric=1025)
    return lab


@pytest.fixture
def daemons(lab_factory: LabFactory, tmp_path: Path) -> Iterator[Daemons]:
    """The test's pingu processes: stopped, and their logs printed, before its labs go."""
    with Daemons(tmp_path) as daemons:
        yield daemons


class NamespaceLoop:
    """An asyncio loop on a thread of its own that has entered one of the lab's network
    namespaces: every socket the coroutines it runs open belongs to that namespace."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.loop = asyncio.new_event_loop()
        self._entered: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name=f"netns {ns}", daemon=True)

    def __enter__(self) -> NamespaceLoop:
        self._thread.start()
        try:
            self._entered.result(10)
        except BaseException:
            self.loop.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def _main(self) -> None:
        try:
            _netns.enter_thread(self.ns)
        except BaseException as error:  # never run anything in the root namespace
            self._entered.set_exception(error)
            return
        self._entered.set_result(None)
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def run(self, work: Coroutine[Any, Any, T], timeout: float = SCENARIO_TIMEOUT) -> T:
        return self.start(work).result(timeout)


def run_in_namespace(ns: str, work: Coroutine[Any, Any, T]) -> T:
    """Run `work` on an event loop whose thread has entered `ns` (never the root namespace)."""
    with NamespaceLoop(ns) as loop:
        return loop.run(work)
