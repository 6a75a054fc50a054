"""Fixtures for the real-kernel scenarios: root is required, every lab is torn down, and
no namespace of this run may survive the session."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from pingu.lab import Lab, Uplink, prefixes_used

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
